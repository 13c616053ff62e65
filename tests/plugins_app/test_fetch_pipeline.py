"""The shared fetch pipeline (common.fetch / common.archive) through plugin installs.

Hostile archives are generated here; each must be refused with the record `failed`, the staging
folder removed and nothing written anywhere else.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import socket
import tarfile
import threading
import time
import zlib

import pytest

from common.errors import ApplicationError
from common.fetch import parse_source
from tests.plugins_app.conftest import SHA, all_paths, archive_of, make_tar_gz, plugin_files, tar_member
from tests.plugins_app.helpers import install_now
from tests.support.fake_http import FakeHttpServer, FakeResponse

pytestmark = pytest.mark.django_db


# --- source specs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("local://web-search", ("local", "web-search", None)),
        ("github://acme/Tools", ("github", "tools", None)),
        ("github://acme/tools#v1.2.0", ("github", "tools", "v1.2.0")),
        ("github://acme/tools#feature/x_y-z", ("github", "tools", "feature/x_y-z")),
        ("github://acme/tools.git#main", ("github", "tools", "main")),
        ("github://acme/tools/extra", ("github", "extra", None)),
        ("github://acme/mono/plugins/Web-Search#v2", ("github", "web-search", "v2")),
        ("github://acme/mono/plugins/tools/#main", ("github", "tools", "main")),
    ],
)
def test_parse_source_accepts(spec, expected):
    parsed = parse_source(spec)
    assert (parsed.scheme, parsed.name, parsed.ref) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "ftp://x",
        "local://",
        "local://../etc",
        "local://Upper",
        "local://a/b",
        "github://acme",
        "github://acme/",
        "github://-acme/tools",
        "github://acme/..",
        "github://acme/tools/-x",
        "github://acme/tools/x/_hidden",
        "github://acme/tools#-rf",
        "github://acme/tools#--upload-pack=x",
        "github://acme/tools#a b",
        "github://acme/tools#a;b",
        "github://acme/tools#$(id)",
        "github://acme/tools#a..b",
        "github://acme/tools#/abs",
        "github://acme/tools#ref?x=1",
        "github://acme/tools#",
    ],
)
def test_parse_source_refuses(spec):
    with pytest.raises(ApplicationError) as caught:
        parse_source(spec)
    assert caught.value.status_code == 400
    assert caught.value.code == "invalid_request"


# --- github happy paths ------------------------------------------------------------------------------


def test_github_pinned_install_records_sha_and_archive_sha256(workspace, plugin_dirs, fake_github):
    archive = archive_of(plugin_files())
    fake_github.repo("acme", "tools", archive, refs={"v1": SHA})
    plugin = install_now(workspace, "github://acme/tools#v1")
    assert plugin.status == "installed", plugin.error
    assert plugin.resolved_ref == SHA
    assert plugin.sha256 == hashlib.sha256(archive).hexdigest()
    tree = plugin_dirs.workspace_dir(workspace) / "tools"
    assert (tree / "plugin.yaml").read_bytes() == plugin_files()["plugin.yaml"]
    assert (tree / "skills" / "a.md").read_bytes() == b"# a\n"
    assert plugin.version == "1.0" and plugin.runtimes == ["claude_code"]
    assert "/api/repos/acme/tools" not in fake_github.requested_paths()  # pinned: no default branch


def test_github_unpinned_install_records_default_branch_sha(workspace, plugin_dirs, fake_github):
    branch_sha = "f" * 40
    fake_github.repo("acme", "tools", archive_of(plugin_files()), sha=branch_sha, default_branch="trunk")
    plugin = install_now(workspace, "github://acme/tools")
    assert plugin.status == "installed", plugin.error
    assert plugin.resolved_ref == branch_sha
    assert fake_github.requested_paths()[:3] == [
        "/api/repos/acme/tools",
        "/api/repos/acme/tools/commits/trunk",
        f"/codeload/acme/tools/tar.gz/{branch_sha}",
    ]


def test_given_sha256_must_match(workspace, plugin_dirs, fake_github):
    archive = archive_of(plugin_files())
    fake_github.repo("acme", "tools", archive)
    plugin = install_now(workspace, "github://acme/tools", sha256="0" * 64)
    assert plugin.status == "failed"
    assert "sha256 mismatch" in plugin.error
    assert all_paths(plugin_dirs.storage) == {str(workspace.pk)}
    good = install_now(workspace, "github://acme/tools", sha256=hashlib.sha256(archive).hexdigest().upper())
    assert good.status == "installed", good.error


def test_local_sha256_is_of_the_tree_and_checked(workspace, plugin_dirs):
    first = install_now(workspace, "local://web-search")
    assert first.status == "installed" and len(first.sha256) == 64 and first.resolved_ref == ""
    again = install_now(workspace, "local://web-search", sha256=first.sha256)
    assert again.status == "installed" and again.sha256 == first.sha256
    (plugin_dirs.registry / "web-search" / "README.md").write_text("changed")
    changed = install_now(workspace, "local://web-search", sha256=first.sha256)
    assert changed.status == "installed"  # the old tree stays
    assert "sha256 mismatch" in changed.error


def test_missing_manifest_and_missing_repo_fail(workspace, plugin_dirs, fake_github):
    fake_github.repo("acme", "tools", archive_of({"README.md": b"x"}))
    plugin = install_now(workspace, "github://acme/tools")
    assert plugin.status == "failed" and "plugin.yaml" in plugin.error
    missing = install_now(workspace, "github://acme/nothing")
    assert missing.status == "failed" and missing.error == "GitHub repository or ref not found"


# --- hostile archives ----------------------------------------------------------------------------------


def _bomb(size: int) -> bytes:
    """A gzipped tar holding one file of `size` zero bytes, built without holding it in memory."""
    info = tarfile.TarInfo("acme-tools-0123456/zeros.bin")
    info.size = size
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [compressor.compress(info.tobuf(tarfile.PAX_FORMAT))]
    block = b"\0" * (1024 * 1024)
    for _ in range(size // len(block)):
        out.append(compressor.compress(block))
    out.append(compressor.compress(b"\0" * 1024))
    out.append(compressor.flush())
    return b"".join(out)


def _many(count: int) -> bytes:
    files = {"plugin.yaml": plugin_files()["plugin.yaml"]}
    files.update({f"f{i:05d}": b"" for i in range(count - 1)})
    return archive_of(files)


def _pax_chain(length: int) -> bytes:
    """`length` pax headers in a row before one member: `tarfile` follows such chains recursively."""
    payload = b"16 comment=abcd\n"
    header = tarfile.TarInfo("././@PaxHeader")
    header.type = tarfile.XHDTYPE
    header.size = len(payload)
    block = header.tobuf(tarfile.USTAR_FORMAT) + payload + b"\0" * (tarfile.BLOCKSIZE - len(payload))
    member = tarfile.TarInfo("acme-tools-0123456/plugin.yaml")
    member.size = 8
    tail = member.tobuf(tarfile.USTAR_FORMAT) + b"name: x\n".ljust(tarfile.BLOCKSIZE, b"\0")
    return gzip.compress(block * length + tail + b"\0" * (2 * tarfile.BLOCKSIZE))


HOSTILE = {
    "dotdot": (
        lambda: make_tar_gz([tar_member("plugin.yaml", b"name: x\n"), tar_member("../x", b"owned")]),
        "'..'",
    ),
    "dotdot_no_top": (lambda: make_tar_gz([tar_member("../x", b"owned")], top=None), "'..'"),
    "absolute": (lambda: make_tar_gz([tar_member("/tmp/abs-plugin-test", b"owned")]), "absolute"),
    "symlink_to_passwd": (
        lambda: make_tar_gz(
            [
                tar_member("plugin.yaml", b"name: x\n"),
                tar_member("passwd", kind=tarfile.SYMTYPE, linkname="/etc/passwd"),
            ]
        ),
        "link",
    ),
    "relative_symlink_escaping": (
        lambda: make_tar_gz(
            [
                tar_member("up", kind=tarfile.SYMTYPE, linkname="../../../../etc"),
                tar_member("up/passwd", b"x"),
            ]
        ),
        "link",
    ),
    "hardlink_outside_the_tree": (
        lambda: make_tar_gz(
            [
                tar_member("plugin.yaml", b"name: x\n"),
                tar_member("h", kind=tarfile.LNKTYPE, linkname="/etc/passwd"),
            ]
        ),
        "link leaving the tree",
    ),
    "hardlink_to_another_top_folder": (
        lambda: make_tar_gz(
            [
                tar_member("plugin.yaml", b"name: x\n"),
                tar_member("h", kind=tarfile.LNKTYPE, linkname="other-top/plugin.yaml"),
            ]
        ),
        "link leaving the tree",
    ),
    "hardlink_to_a_folder": (
        lambda: make_tar_gz(
            [
                tar_member("plugin.yaml", b"name: x\n"),
                tar_member("skills", kind=tarfile.DIRTYPE),
                tar_member("h", kind=tarfile.LNKTYPE, linkname="acme-tools-0123456/skills"),
            ]
        ),
        "link to a folder",
    ),
    "char_device": (lambda: make_tar_gz([tar_member("null", kind=tarfile.CHRTYPE)]), "device"),
    "block_device": (lambda: make_tar_gz([tar_member("disk", kind=tarfile.BLKTYPE)]), "device"),
    "fifo": (lambda: make_tar_gz([tar_member("pipe", kind=tarfile.FIFOTYPE)]), "FIFO"),
    "10001_members": (lambda: _many(10_001), "more than 10000 entries"),
    "over_size_cap": (lambda: archive_of(plugin_files({"big.bin": b"x" * 5000})), "larger than 4096"),
    "gzip_bomb": (lambda: _bomb(256 * 1024 * 1024), "larger than"),  # ~1000:1, above the 100 MiB cap
    "two_top_folders": (
        lambda: make_tar_gz([tar_member("a/plugin.yaml", b"name: x\n"), tar_member("b/x", b"y")], top=None),
        "single top folder",
    ),
    "file_at_top": (lambda: make_tar_gz([tar_member("plugin.yaml", b"name: x\n")], top=None), "top folder"),
    "duplicate_member": (
        lambda: make_tar_gz([tar_member("plugin.yaml", b"a: 1\n"), tar_member("plugin.yaml", b"")]),
        "twice",
    ),
    "extended_header_chain": (lambda: _pax_chain(5000), "too many extended headers"),
    "name_too_long": (lambda: make_tar_gz([tar_member("a" * 300 + "/b", b"x")]), "could not be written"),
    "path_too_deep": (
        lambda: make_tar_gz([tar_member("/".join(["d" * 200] * 30) + "/f", b"x")]),
        "could not be written",
    ),
    "deep_nesting": (  # shutil.rmtree would hit the recursion limit removing this
        lambda: make_tar_gz([tar_member("a/" * 1500 + "f", b"x")]),
        "nested deeper than 64 levels",
    ),
    "not_gzip": (lambda: b"this is not an archive", "gzip"),
    "truncated": (lambda: archive_of(plugin_files())[:-40], "truncated"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_refused_without_trace(case, workspace, plugin_dirs, fake_github, settings):
    settings.PLUGIN_MAX_TREE_BYTES = 4096 if case == "over_size_cap" else settings.PLUGIN_MAX_TREE_BYTES
    build, reason = HOSTILE[case]
    fake_github.repo("acme", "tools", build())
    before = all_paths(plugin_dirs.root)
    started = time.monotonic()
    plugin = install_now(workspace, "github://acme/tools")
    assert plugin.status == "failed"
    assert reason in plugin.error and len(plugin.error) <= 500
    # Nothing left: the workspace folder exists (staging parent) but is empty.
    assert all_paths(plugin_dirs.root) - before == {f"storage/{workspace.pk}"}
    assert not list(plugin_dirs.workspace_dir(workspace).iterdir())
    assert not os.path.exists("/tmp/abs-plugin-test")
    if case == "gzip_bomb":
        assert time.monotonic() - started < 10  # refused at the header, not after inflating


def test_file_count_limit_edge_is_accepted(workspace, plugin_dirs, fake_github):
    fake_github.repo("acme", "tools", _many(10_000))
    plugin = install_now(workspace, "github://acme/tools")
    assert plugin.status == "installed", plugin.error
    assert len(list((plugin_dirs.workspace_dir(workspace) / "tools").iterdir())) == 10_000


def test_size_cap_edge_is_accepted(workspace, plugin_dirs, fake_github, settings):
    files = plugin_files()
    used = sum(len(data) for data in files.values())
    settings.PLUGIN_MAX_TREE_BYTES = used + 1000
    fake_github.repo("acme", "tools", archive_of(plugin_files({"pad.bin": b"p" * 1000})))
    assert install_now(workspace, "github://acme/tools").status == "installed"
    fake_github.repo("acme", "tools", archive_of(plugin_files({"pad.bin": b"p" * 1001})))
    over = install_now(workspace, "github://acme/tools")
    assert "larger than" in over.error


def test_local_source_with_symlink_or_fifo_refused(workspace, plugin_dirs):
    folder = plugin_dirs.registry / "web-search"
    (folder / "passwd").symlink_to("/etc/passwd")
    plugin = install_now(workspace, "local://web-search")
    assert plugin.status == "failed" and "link" in plugin.error
    (folder / "passwd").unlink()
    os.mkfifo(folder / "pipe")
    plugin = install_now(workspace, "local://web-search")
    assert plugin.status == "failed" and "special file" in plugin.error
    assert not list(plugin_dirs.workspace_dir(workspace).iterdir())


def test_oversized_pax_header_refused_before_it_is_read(workspace, plugin_dirs, fake_github):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("acme-tools-0123456/plugin.yaml")
        info.pax_headers = {"comment": "x" * (200 * 1024)}
        info.size = 8
        archive.addfile(info, io.BytesIO(b"name: x\n"))
    fake_github.repo("acme", "tools", gzip.compress(raw.getvalue()))
    plugin = install_now(workspace, "github://acme/tools")
    assert plugin.status == "failed" and "extended header" in plugin.error


# --- network safeguards ------------------------------------------------------------------------------


def test_dripping_server_is_cut_off_at_the_deadline(workspace, plugin_dirs, fake_github, settings):
    settings.PLUGIN_FETCH_TIMEOUT_SECONDS = 2
    archive = archive_of(plugin_files())
    drip = FakeResponse(200, [archive[i : i + 1] for i in range(len(archive))], chunk_interval=1.0)
    fake_github.repo("acme", "tools", drip)
    started = time.monotonic()
    plugin = install_now(workspace, "github://acme/tools")
    elapsed = time.monotonic() - started
    assert plugin.status == "failed"
    assert "time limit" in plugin.error or "timed out" in plugin.error
    assert elapsed < 5, elapsed
    assert not list(plugin_dirs.workspace_dir(workspace).iterdir())


class _DripServer:
    """A raw server on 127.0.0.1 that answers `prefix`, then drips `byte` every 0.2 s forever:
    each read gets data well within any socket timeout, only the overall deadline can stop it."""

    def __init__(self, prefix: bytes, byte: bytes) -> None:
        self.prefix, self.byte = prefix, byte
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(self.prefix)
                while not self.stop.wait(0.2):
                    conn.sendall(self.byte)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


@pytest.mark.parametrize(
    ("where", "prefix", "byte"),
    [
        ("api", b"HTTP/1.1 200 OK\r\n", b"X"),  # a header line that never ends
        ("archive", b"HTTP/1.1 200 OK\r\nX-Slow: ", b"x"),
        ("archive", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"1"),  # chunk size line
    ],
)
def test_server_dripping_headers_is_cut_off_at_the_deadline(
    where, prefix, byte, workspace, plugin_dirs, fake_github, settings
):
    settings.PLUGIN_FETCH_TIMEOUT_SECONDS = 2
    fake_github.repo("acme", "tools", archive_of(plugin_files()))
    drip = _DripServer(prefix, byte)
    if where == "api":
        settings.GITHUB_API_BASE_URL = drip.url
    else:
        settings.GITHUB_ARCHIVE_BASE_URL = drip.url
    try:
        started = time.monotonic()
        plugin = install_now(workspace, "github://acme/tools")
        elapsed = time.monotonic() - started
    finally:
        drip.close()
    assert plugin.status == "failed"
    assert "time limit" in plugin.error or "timed out" in plugin.error, plugin.error
    assert elapsed < 5, elapsed
    assert not list(plugin_dirs.workspace_dir(workspace).iterdir())


@pytest.mark.parametrize("where", ["archive", "api"])
def test_redirect_to_another_host_or_port_is_refused_before_following(
    where, workspace, plugin_dirs, fake_github
):
    with FakeHttpServer() as elsewhere:
        elsewhere.route_prefix("GET", "/", lambda request: FakeResponse(200, archive_of(plugin_files())))
        fake_github.repo("acme", "tools", archive_of(plugin_files()))
        target = f"{elsewhere.url}/codeload/acme/tools/tar.gz/{SHA}"
        redirect = lambda request: FakeResponse(302, b"", {"Location": target})  # noqa: E731
        if where == "archive":
            fake_github.server.route("GET", f"/codeload/acme/tools/tar.gz/{SHA}", redirect)
        else:
            fake_github.server.route("GET", "/api/repos/acme/tools/commits/main", redirect)
        plugin = install_now(workspace, "github://acme/tools")
        assert plugin.status == "failed"
        assert "redirect" in plugin.error
        assert elsewhere.requests == []


def test_redirect_under_the_configured_bases_is_followed(workspace, plugin_dirs, fake_github):
    fake_github.repo("acme", "tools", archive_of(plugin_files()))
    moved = f"{fake_github.archive_base}/moved/tools.tar.gz"
    fake_github.server.route(
        "GET",
        f"/codeload/acme/tools/tar.gz/{SHA}",
        lambda request: FakeResponse(302, b"", {"Location": moved}),
    )
    fake_github.server.route(
        "GET", "/codeload/moved/tools.tar.gz", lambda r: FakeResponse(200, archive_of(plugin_files()))
    )
    plugin = install_now(workspace, "github://acme/tools")
    assert plugin.status == "installed", plugin.error


def test_redirect_to_same_host_outside_the_bases_is_refused(workspace, plugin_dirs, fake_github):
    fake_github.repo("acme", "tools", archive_of(plugin_files()))
    fake_github.server.route(
        "GET",
        f"/codeload/acme/tools/tar.gz/{SHA}",
        lambda request: FakeResponse(302, b"", {"Location": f"{fake_github.server.url}/elsewhere"}),
    )
    plugin = install_now(workspace, "github://acme/tools")
    assert plugin.status == "failed" and "redirect" in plugin.error
    assert "/elsewhere" not in fake_github.requested_paths()


def test_extended_header_chain_limit_edge(workspace, plugin_dirs, fake_github):
    """Four extended headers in front of a member are accepted, five refused (not a crash)."""
    fake_github.repo("acme", "tools", _pax_chain(4))
    assert install_now(workspace, "github://acme/tools").status == "installed"
    fake_github.repo("acme", "tools", _pax_chain(5))
    refused = install_now(workspace, "github://acme/tools")
    assert refused.error == "archive member with too many extended headers"


@pytest.mark.parametrize(
    "location",
    [
        "http://localhost:{port}/codeload/acme/tools/tar.gz/{sha}",  # same port, another host name
        "https://127.0.0.1:{port}/codeload/acme/tools/tar.gz/{sha}",  # same host and port, other scheme
        "http://127.0.0.1:{other}/codeload/acme/tools/tar.gz/{sha}",  # same host, another port
    ],
)
def test_redirect_outside_the_bases_is_refused_whatever_differs(
    location, workspace, plugin_dirs, fake_github
):
    fake_github.repo("acme", "tools", archive_of(plugin_files()))
    port = int(fake_github.server.url.rsplit(":", 1)[1])
    target = location.format(port=port, other=port + 1 if port < 65535 else port - 1, sha=SHA)
    fake_github.server.route(
        "GET",
        f"/codeload/acme/tools/tar.gz/{SHA}",
        lambda request: FakeResponse(302, b"", {"Location": target}),
    )
    plugin = install_now(workspace, "github://acme/tools")
    assert plugin.status == "failed" and "redirect" in plugin.error
    assert fake_github.requested_paths().count(f"/codeload/acme/tools/tar.gz/{SHA}") == 1


def test_depth_limit_edge(workspace, plugin_dirs, fake_github):
    fake_github.repo("acme", "tools", archive_of(plugin_files({"d/" * 63 + "f": b"x"})))  # 64 levels
    assert install_now(workspace, "github://acme/tools").status == "installed"
    fake_github.repo("acme", "tools", archive_of(plugin_files({"d/" * 64 + "f": b"x"})))  # 65 levels
    refused = install_now(workspace, "github://acme/tools")
    assert refused.error == "archive member nested deeper than 64 levels"
