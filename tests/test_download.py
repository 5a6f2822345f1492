"""Downloads against a real HTTP server on 127.0.0.1."""
import hashlib
import http.server
import threading

import pytest

from plugins.datasets.api import RemoteFile
from plugins.errors import TfpipeError
from tasks.download import fetch

PAYLOAD = b"\x1f\x8b" + bytes(range(256)) * 40


class Server:
    def __init__(self):
        self.routes: dict[str, list[tuple[int, bytes]]] = {}
        self.hits: dict[str, int] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                replies = server.routes.get(self.path, [(404, b"<html>not found</html>")])
                status, body = replies.pop(0) if len(replies) > 1 else replies[0]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def server():
    server = Server()
    yield server
    server.httpd.shutdown()


def remote(server, path="/data.gz", payload=PAYLOAD):
    return RemoteFile("data.gz", (server.url + path,), hashlib.sha256(payload).hexdigest(), len(payload))


def test_fetch_verifies_and_writes(server, tmp_path):
    server.routes["/data.gz"] = [(200, PAYLOAD)]
    url = fetch(remote(server), tmp_path / "data.gz", backoff_s=0)
    assert url.endswith("/data.gz") and (tmp_path / "data.gz").read_bytes() == PAYLOAD


def test_transient_failures_are_retried(server, tmp_path):
    server.routes["/data.gz"] = [(503, b"busy"), (503, b"busy"), (200, PAYLOAD)]
    fetch(remote(server), tmp_path / "data.gz", backoff_s=0)
    assert server.hits["/data.gz"] == 3


def test_html_instead_of_data_is_rejected_and_nothing_is_left(server, tmp_path):
    page = b"<!DOCTYPE html><html>" + b"x" * (len(PAYLOAD) - 21)
    server.routes["/data.gz"] = [(200, page)]
    with pytest.raises(TfpipeError, match=r"data.gz: sha256 .* \(the server sent an HTML page"):
        fetch(remote(server), tmp_path / "data.gz", attempts=2, backoff_s=0)
    assert list(tmp_path.iterdir()) == []


def test_truncated_download_is_rejected(server, tmp_path):
    server.routes["/data.gz"] = [(200, PAYLOAD[:-100])]
    with pytest.raises(TfpipeError, match=f"size {len(PAYLOAD) - 100} bytes, expected {len(PAYLOAD)}"):
        fetch(remote(server), tmp_path / "data.gz", attempts=1, backoff_s=0)
    assert not (tmp_path / "data.gz").exists()


def test_unreachable_names_the_url_and_the_mirror(tmp_path):
    unreachable = RemoteFile("data.gz", ("http://127.0.0.1:9/data.gz",), "0" * 64, 10)
    with pytest.raises(TfpipeError, match=r"http://127.0.0.1:9/data.gz.*TFPIPE_DATA_MIRROR") as error:
        fetch(unreachable, tmp_path / "data.gz", attempts=1, backoff_s=0)
    assert "<" not in str(error.value)  # no placeholder left for the user to decode
    hint = r"put the file at \$TFPIPE_DATA_MIRROR/tiny/data.gz$"
    with pytest.raises(TfpipeError, match=hint) as error:
        fetch(unreachable, tmp_path / "data.gz", attempts=2, backoff_s=0,
              mirror_path="$TFPIPE_DATA_MIRROR/tiny/data.gz")
    assert "set TFPIPE_DATA_MIRROR" in str(error.value) and "(2 attempts)" in str(error.value)
    hint = r"Without internet, put the file at /srv/mirror/tiny/data.gz$"
    with pytest.raises(TfpipeError, match=hint):
        fetch(unreachable, tmp_path / "data.gz", attempts=1, backoff_s=0,
              mirror_path="/srv/mirror/tiny/data.gz")


def test_second_url_is_tried_when_the_first_fails(server, tmp_path):
    server.routes["/good.gz"] = [(200, PAYLOAD)]
    file = RemoteFile("data.gz", (server.url + "/missing.gz", server.url + "/good.gz"),
                      hashlib.sha256(PAYLOAD).hexdigest(), len(PAYLOAD))
    assert fetch(file, tmp_path / "data.gz", attempts=1, backoff_s=0).endswith("/good.gz")
