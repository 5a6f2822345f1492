"""The README renders and points at things a user has (CI runs this with the rest)."""
import re

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text("utf-8")
FENCE = re.compile(r"^\s*(```|~~~)")


def fenced_blocks(text: str) -> tuple[list[list[str]], bool]:
    """Code blocks of `text` and whether the last fence was closed."""
    blocks, current = [], None
    for line in text.splitlines():
        if FENCE.match(line):
            if current is None:
                current = []
            else:
                blocks.append(current)
                current = None
        elif current is not None:
            current.append(line)
    return blocks, current is None


def test_every_code_fence_is_closed():
    _, closed = fenced_blocks(README)
    assert closed, "a ``` fence is never closed: everything after it renders as code"


def test_fence_check_catches_an_unclosed_fence():
    assert not fenced_blocks("text\n```bash\nls\n## Heading\n")[1]


def test_no_code_block_repeats_a_line():
    for block in fenced_blocks(README)[0]:
        lines = [line.strip() for line in block if len(line.strip()) > 3 and not line.strip().startswith("#")]
        repeated = {line for line in lines if lines.count(line) > 1}
        assert not repeated, f"repeated in one code block: {sorted(repeated)}"


def test_one_benchmark_section():
    headings = [line for line in README.splitlines() if re.match(r"^#+ .*[Bb]enchmark", line)]
    assert len(headings) == 1, headings


def test_project_paths_named_in_the_readme_exist():
    named = set(re.findall(r"(?<![\w/.$-])((?:bench|tests|pipelines|tasks|plugins|deploy|docs)/[\w./-]*\w)", README))
    # `deploy/x.{service,timer}` names several files: check the part before the brace.
    missing = sorted(path for path in named if "*" not in path and path + ".{" not in README
                     and not (ROOT / path).exists())
    assert not missing, f"README names paths that do not exist: {missing}"
    assert "../shared" not in README, "README names the developers' ../shared folder"
