"""The writer at fleet scale: the stat cache, threads, folders created once, and the same result as the plain path.

Each fast path is checked against the reference: a write without a stat cache on one thread (the old writer's
semantics), ``json.dumps`` for the manifest, ``PurePosixPath`` for the manifest's path check.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import stat
import time
from array import array
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from conftest import tree_digest

from generator.errors import OutputConflict
from generator.render import writer
from generator.render.pipeline import render, stat_cache_dir
from generator.render.writer import MANIFEST, UNKNOWN, StatCache, compare, manifest_text, write


def _plan(count: int = 300, seed: int = 1) -> dict[str, str]:
    """A plan shaped like a fleet's: nested folders, a few root files, some non-ASCII text and names."""
    rng = random.Random(seed)
    plan = {"CODEOWNERS": "* @platform\n", "FLEET.md": "# Fleet — überblick\n"}
    for index in range(count):
        cluster = f"cluster-{index % 37:03d}"
        kind = rng.choice(["apps", "infrastructure/controllers", "infrastructure/configs/crds", "flux-system"])
        name = rng.choice(["kustomization.yaml", "release.yaml", "values-é.yaml", "notes.md"])
        body = "".join(f"key{n}: {rng.random()}\n" for n in range(rng.randint(1, 400)))
        plan[f"fleet/clusters/{cluster}/{kind}/{index:04d}-{name}"] = f"# {index} ✓\n{body}"
    return dict(sorted(plan.items()))


def _cache_file(cache: Path) -> Path:
    files = [p for p in cache.glob("*.stat")]
    assert len(files) == 1, files
    return files[0]


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every output file the writer reads to hash it (the real function still runs)."""
    seen: list[str] = []
    real = writer._hash_file

    def spy(path: str) -> tuple[str | None, writer.StatKey | None]:
        seen.append(path)
        return real(path)

    monkeypatch.setattr(writer, "_hash_file", spy)
    return seen


def _settled(out: Path, plan: dict[str, str], cache: Path) -> None:
    """Wait until the output file system's clock is past every file's ctime, then write again: the cache is then
    re-stamped, and no entry is racy any more (on a file system with coarse timestamps, files written in the
    cache's own tick are read again once, by design)."""
    newest = max(p.stat().st_ctime_ns for p in out.rglob("*"))
    probe = out / ".tick"
    for _ in range(300):
        probe.write_text("")
        if probe.stat().st_ctime_ns > newest:
            break
        time.sleep(0.01)
    probe.unlink()
    write(out, plan, stat_cache=cache)


def _read_cache(path: Path) -> dict[str, Any]:
    """A stat cache file as its JSON header's fields, with ``paths`` (newline-joined), ``digests`` (hex,
    concatenated) and ``keys`` (a list of integers): read here byte by byte, not by the writer's code."""
    raw = path.read_bytes()
    header, _, body = raw.partition(b"\n")
    data: dict[str, Any] = json.loads(header)
    count, size = data["count"], data["paths_bytes"]
    assert len(body) == size + 64 * count
    data["paths"] = body[:size].decode("utf-8")
    data["digests"] = body[size : size + 32 * count].hex()
    raw_keys = body[size + 32 * count :]
    data["keys"] = [int.from_bytes(raw_keys[n : n + 8], "little", signed=True) for n in range(0, len(raw_keys), 8)]
    return data


def _raw_keys(data: dict[str, Any]) -> bytes:
    return b"".join(n.to_bytes(8, "little", signed=True) for n in data["keys"])


def _write_cache(path: Path, data: dict[str, Any]) -> None:
    """``_read_cache`` reversed; ``raw_paths``, ``raw_digests`` or ``raw_keys`` (bytes) stand for those parts."""
    parts = ("paths", "digests", "keys")
    header = {key: value for key, value in data.items() if key not in parts and key.removeprefix("raw_") not in parts}
    paths = data.get("raw_paths", data["paths"].encode("utf-8"))
    digests = data.get("raw_digests", bytes.fromhex(data["digests"]))
    path.write_bytes(json.dumps(header).encode() + b"\n" + paths + digests + data.get("raw_keys", _raw_keys(data)))


def _record(data: dict[str, Any], rel: str) -> tuple[int, dict[str, Any]]:
    """Where ``rel`` is in a stat cache's record (its index), and the record."""
    return data["paths"].split("\n").index(rel), data


def _set_key(data: dict[str, Any], rel: str, key: list[int]) -> None:
    """Record ``key`` as the stat of ``rel`` in a stat cache's record."""
    index, _ = _record(data, rel)
    data["keys"][4 * index : 4 * index + 4] = key


def test_stat_keys_as_stored_round_trip() -> None:
    flat = array("q", [0, -1, 2**63 - 1, -(2**63), 1796039607299533582, 5121376])
    stored = writer._keys_bytes(flat)
    assert writer._keys_from(stored) == flat
    assert stored == b"".join(n.to_bytes(8, "little", signed=True) for n in flat)
    for bad in (stored[:-4], stored + b"!"):
        with pytest.raises(ValueError):
            writer._keys_from(bad)


def _changes(changes: writer.Changes) -> tuple[object, ...]:
    return (changes.created, changes.updated, changes.deleted, changes.unchanged, changes.conflicts)


def test_fast_path_writes_what_the_plain_path_writes(tmp_path: Path) -> None:
    plan = _plan()
    edited = dict(plan)
    names = list(plan)
    edited[names[5]] += "# changed\n"
    del edited[names[9]]
    edited["fleet/clusters/new-cluster/deep/er/still/file.yaml"] = "new: true\n"
    trees, results = [], []
    for threads, cache in ((1, None), (4, tmp_path / "cache-4"), (8, tmp_path / "cache-8")):
        out = tmp_path / f"out-{threads}"
        steps = [write(out, plan, stat_cache=cache, threads=threads), write(out, plan, stat_cache=cache,
                 threads=threads), write(out, edited, stat_cache=cache, threads=threads),
                 compare(out, plan, stat_cache=cache, threads=threads)]
        results.append([_changes(c) for c in steps])
        trees.append(tree_digest(out))
    assert results[0] == results[1] == results[2]
    assert trees[0] == trees[1] == trees[2]
    assert results[0][0][0] == sorted(plan) and results[0][1][3] == len(plan)  # created all, then all unchanged
    assert results[0][2][:3] == (["fleet/clusters/new-cluster/deep/er/still/file.yaml"], [names[5]], [names[9]])


def test_manifest_is_byte_identical_to_the_json_module() -> None:
    names = ["a", "fleet/x.yaml", 'quote"d/b.yaml', "é/ü.yaml", "emoji/😀.yaml", "ctl/\x7f\x01.yaml", "sep/\u2028"]
    rng = random.Random(3)
    for size in (0, 1, len(names)):
        digests = {name: hashlib.sha256(str(rng.random()).encode()).hexdigest() for name in rng.sample(names, size)}
        reference = json.dumps({"generator": "fleetgen", "files": digests}, indent=2, sort_keys=True) + "\n"
        assert manifest_text(digests) == reference
        assert writer.parse_manifest(reference, "m.json") == digests


@pytest.mark.parametrize("names", [
    ["a", "fleet/x.yaml", "b c/~!@#$%^&*()_+{}|:<>?`-=[];',./"],  # written as they are (the one-call-per-line path)
    ["a", 'quote"d/b.yaml'], ["a", "back\\slash"], ["a", "tab\there"], ["a", "del\x7f"], ["a", "é"],  # escaped
])
def test_manifest_of_plain_and_escaped_names_is_the_json_modules(names: list[str]) -> None:
    digests = {name: hashlib.sha256(name.encode()).hexdigest() for name in names}
    assert manifest_text(digests) == json.dumps({"generator": "fleetgen", "files": digests}, indent=2,
                                                sort_keys=True) + "\n"


def test_written_manifest_records_the_plan(tmp_path: Path) -> None:
    plan = _plan(50)
    write(tmp_path / "out", plan, stat_cache=tmp_path / "cache")
    expected = {"generator": "fleetgen", "files": {rel: writer.sha256(text) for rel, text in sorted(plan.items())}}
    text = (tmp_path / "out" / MANIFEST).read_text(encoding="utf-8")
    assert text == json.dumps(expected, indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize("name", [
    "a", "a/b.yaml", ".fleetgen/x", "a..b/c", "...", "", "/a", "//a", "a/", "a//b", "./a", "a/./b", "a/.", ".", "..",
    "a/../b", "../a", "a\\b", "a/b/..", " /a", "a/ /b", "é/ü", "a\x00b",
])
def test_manifest_path_check_matches_purepath(name: str) -> None:
    def reference(name: str) -> bool:
        parts = PurePosixPath(name).parts
        if not parts or name.startswith("/") or "\\" in name or {"..", "."} & set(parts):
            return False
        return PurePosixPath(*parts).as_posix() == name

    assert writer._safe_relative(name) == reference(name)


def test_stat_cache_path_check_matches_the_manifests() -> None:
    """The stat cache checks all its paths at once (newline-joined); the verdict is the manifest's, name by name."""
    names = ["a", "a/b.yaml", ".fleetgen/x", "a..b/c", "...", "", "/a", "//a", "a/", "a//b", "./a", "a/./b", "a/.",
             ".", "..", "a/../b", "../a", "a\\b", "a/b/..", " /a", "a/ /b", "é/ü", "a\x00b", ".a/..b", "x/.../y"]
    rng = random.Random(5)
    for _ in range(2000):
        chosen = rng.sample(names, rng.randint(1, 4))
        assert writer._safe_lines("\n".join(chosen)) == all(writer._safe_relative(n) for n in chosen), chosen


def test_unchanged_tree_is_compared_without_reading_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, cache, plan = tmp_path / "out", tmp_path / "cache", _plan()
    write(out, plan, stat_cache=cache)
    _settled(out, plan, cache)
    reads = _reads(monkeypatch)
    assert compare(out, plan, stat_cache=cache).unchanged == len(plan)
    assert reads == []
    before = _cache_file(cache).stat()
    assert write(out, plan, stat_cache=cache).clean
    assert reads == []
    after = _cache_file(cache).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # every entry used: kept
    assert compare(out, plan).unchanged == len(plan) and len(reads) == len(plan)  # no cache: every file read


def test_hand_edit_is_refused_with_a_warm_cache_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, cache, plan = tmp_path / "out", tmp_path / "cache", _plan()
    write(out, plan, stat_cache=cache)
    _settled(out, plan, cache)
    edited, dropped = sorted(plan)[10], sorted(plan)[20]
    path = out / edited
    original = path.read_bytes()
    path.write_bytes(original[:-2] + b"X\n")  # same size: only the stat's times and the bytes tell
    (out / dropped).write_bytes((out / dropped).read_bytes() + b"# mine\n")
    renewed = {rel: text + "# v2\n" for rel, text in plan.items() if rel != dropped}
    before, cache_before = tree_digest(out), tree_digest(cache)
    reads = _reads(monkeypatch)
    with pytest.raises(OutputConflict) as raised:
        write(out, renewed, stat_cache=cache)
    assert raised.value.paths == sorted([edited, dropped])
    assert tree_digest(out) == before and tree_digest(cache) == cache_before
    assert reads == [str(path)]  # only the edited planned file was read: the others matched their record
    changes = write(out, renewed, force=True, stat_cache=cache)
    assert changes.deleted == [dropped] and edited in changes.updated
    assert path.read_text(encoding="utf-8") == renewed[edited]


def test_racy_edit_in_the_tick_of_the_cache_is_read_again(tmp_path: Path) -> None:
    """An edit in the same timestamp tick as fleetgen's record keeps size, mtime, inode and ctime: the cache
    cannot tell it, so an entry not older than the cache's stamp is never trusted (git's racy-clean rule)."""
    out, cache, plan = tmp_path / "out", tmp_path / "cache", _plan(40)
    write(out, plan, stat_cache=cache)
    rel = sorted(plan)[3]
    path = out / rel
    path.write_bytes(path.read_bytes()[:-2] + b"X\n")
    st = path.stat()
    cache_file = _cache_file(cache)
    data = _read_cache(cache_file)
    # what the cache would hold had the edit landed in the tick of fleetgen's write and of the cache's stamp
    _set_key(data, rel, [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns])
    newest = max(st.st_mtime_ns, st.st_ctime_ns)
    for stamp, conflict in ((newest, [rel]), (newest + 1, [])):
        data["stamp_ns"] = stamp
        _write_cache(cache_file, data)
        changes = compare(out, plan, stat_cache=cache)
        assert changes.conflicts == conflict  # not racy (stamp later than the edit): the record is trusted
    with pytest.raises(OutputConflict):
        data["stamp_ns"] = st.st_mtime_ns
        _write_cache(cache_file, data)
        write(out, plan, stat_cache=cache)


def test_the_cache_stamp_is_the_output_file_systems_time(tmp_path: Path) -> None:
    out, cache, plan = tmp_path / "out", tmp_path / "cache", _plan(40)
    write(out, plan, stat_cache=cache)
    stamp = _read_cache(_cache_file(cache))["stamp_ns"]
    newest = max(max(p.stat().st_mtime_ns, p.stat().st_ctime_ns) for p in out.rglob("*") if p.is_file())
    assert stamp >= newest
    assert not [p for p in out.rglob("*.stamp")]  # the probe taking the time is removed


def test_pruned_and_deleted_files_with_a_warm_cache(tmp_path: Path) -> None:
    out, cache, plan = tmp_path / "out", tmp_path / "cache", _plan()
    write(out, plan, stat_cache=cache)
    foreign = out / "fleet/clusters/cluster-001/NOTES.md"
    foreign.write_text("mine\n")
    gone = [rel for rel in plan if rel.startswith("fleet/clusters/cluster-002/")]
    smaller = {rel: text for rel, text in plan.items() if rel not in gone}
    user_deleted = sorted(smaller)[7]
    (out / user_deleted).unlink()
    changes = write(out, smaller, stat_cache=cache)
    assert changes.deleted == sorted(gone) and changes.created == [user_deleted]
    assert not (out / "fleet/clusters/cluster-002").exists()  # emptied folders removed
    assert foreign.read_text() == "mine\n"
    assert write(out, smaller, stat_cache=cache).clean
    assert set(tree_digest(out)) == {*smaller, MANIFEST, "fleet/clusters/cluster-001/NOTES.md"}


@pytest.mark.parametrize("corrupt", [
    b"\x00\xff not json", b"[]", b'{"format": 1}', b"null",
    "entries",  # well-formed, with every entry or digest broken
    "stamp",  # a stamp that is not a number
    "other-output",  # a cache of another output folder
    "symlink",  # to a device that never ends: not followed
    "fifo",  # would block a reader: not read
])
def test_corrupt_stat_cache_is_ignored_and_replaced(tmp_path: Path, corrupt: bytes | str) -> None:
    out, cache, plan = tmp_path / "out", tmp_path / "cache", _plan(80)
    write(out, plan, stat_cache=cache)
    cache_file = _cache_file(cache)
    data = _read_cache(cache_file)
    edited = sorted(plan)[4]
    (out / edited).write_text("# hand edit\n")
    if corrupt == "entries":  # each a well-formed cache but for one part; all with a matching record of the edit
        st = (out / edited).stat()
        _set_key(data, edited, [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns])
        data["stamp_ns"] = max(st.st_mtime_ns, st.st_ctime_ns) + 1
        broken = [
            {**data, "raw_keys": _raw_keys(data)[:-3]}, {**data, "keys": data["keys"][:-4]},
            {**data, "raw_digests": bytes.fromhex(data["digests"])[:-1]}, {**data, "digests": data["digests"][:-64]},
            {**data, "paths": data["paths"] + "\n../escape"}, {**data, "paths": "/abs\n" + data["paths"]},
            {**data, "paths": data["paths"].replace("\n", "\n\n", 1)}, {**data, "manifest": [1, 2, "x", 4]},
            {**data, "paths": data["paths"].replace(edited, sorted(plan)[0])},  # a path twice
            {**data, "count": 7}, {**data, "paths_bytes": data["paths_bytes"] + 1},
            {key: value for key, value in data.items() if key != "manifest"},
            {**data, "raw_paths": data["paths"].encode()[:-1] + b"\xff"},  # not UTF-8
        ]
        _write_cache(cache_file, data)  # whole, the forged record hides the edit: the cache is trusted
        assert compare(out, plan, stat_cache=cache).conflicts == []
        for bad in broken:
            _write_cache(cache_file, bad)
            assert _changes(compare(out, plan, stat_cache=cache)) == _changes(compare(out, plan))
        _write_cache(cache_file, broken[0])
    elif corrupt == "stamp":
        _write_cache(cache_file, {**data, "stamp_ns": "soon"})
    elif corrupt == "other-output":
        _write_cache(cache_file, {**data, "out": str(tmp_path / "elsewhere")})
    elif corrupt == "symlink":
        cache_file.unlink()
        cache_file.symlink_to("/dev/zero")
    elif corrupt == "fifo":
        cache_file.unlink()
        os.mkfifo(cache_file)
    else:
        assert isinstance(corrupt, bytes)
        cache_file.write_bytes(corrupt)
    assert _changes(compare(out, plan, stat_cache=cache)) == _changes(compare(out, plan))
    with pytest.raises(OutputConflict):
        write(out, plan, stat_cache=cache)
    write(out, plan, force=True, stat_cache=cache)
    assert cache_file.is_file() and not cache_file.is_symlink()
    assert _read_cache(cache_file)["format"] == writer.STAT_CACHE_FORMAT
    assert write(out, plan, stat_cache=cache).clean


def test_cache_of_an_older_tree_does_not_hide_a_restored_file(tmp_path: Path) -> None:
    """A file put back by other means (git checkout, cp -p) has a new inode and ctime: it is read again."""
    out, cache, plan = tmp_path / "out", tmp_path / "cache", _plan(40)
    write(out, plan, stat_cache=cache)
    rel = sorted(plan)[2]
    path = out / rel
    st = path.stat()
    replacement = path.with_name("replacement")
    replacement.write_bytes(path.read_bytes()[:-2] + b"Y\n")
    os.utime(replacement, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(replacement, path)
    assert compare(out, plan, stat_cache=cache).conflicts == [rel]


def test_folders_are_created_once_parents_first(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "out"
    plan = {f"a/b{n % 7}/c{n % 3}/d/file-{n}.yaml": f"n: {n}\n" for n in range(200)}
    plan["top.yaml"] = "top: true\n"
    write(out, plan, threads=4)
    assert tree_digest(out).keys() == {*plan, MANIFEST}
    folders = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_dir()}
    assert folders == {".fleetgen", "a", *(f"a/b{b}" for b in range(7)),
                       *(f"a/b{b}/c{c}" for b in range(7) for c in range(3)),
                       *(f"a/b{b}/c{c}/d" for b in range(7) for c in range(3))}
    (out / "a/b1/c1/d").rename(tmp_path / "moved")  # a folder gone: made again, its siblings left alone
    more = {**plan, "a/b1/c1/d/new.yaml": "new: true\n"}
    changes = write(out, more, threads=4)
    assert changes.created == sorted(rel for rel in more if rel.startswith("a/b1/c1/d/"))


def test_a_file_where_a_folder_must_go_fails_before_any_file_is_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write(out, {"keep.yaml": "a: 1\n"})
    (out / "blocker").write_text("not a folder\n")
    (out / "dangling").symlink_to(tmp_path / "nowhere")
    before = tree_digest(out)
    with pytest.raises(NotADirectoryError):  # found when comparing
        write(out, {"keep.yaml": "a: 2\n", "blocker/x/y.yaml": "b: 1\n"})
    with pytest.raises(FileExistsError):  # found when making the folders
        write(out, {"keep.yaml": "a: 2\n", "dangling/x/y.yaml": "b: 1\n"}, threads=4)
    assert tree_digest(out) == before and not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("existing", [False, True])
def test_files_are_0644_whatever_the_umask(tmp_path: Path, existing: bool) -> None:
    """Files 0644 whatever the umask; folders as the umask makes them (a new output folder, written through a
    staging folder, or an existing one)."""
    out = tmp_path / "out"
    if existing:
        out.mkdir()
        (out / "theirs.txt").write_text("x\n")
    old = os.umask(0o077)
    try:
        write(out, _plan(70), threads=4)
    finally:
        os.umask(old)
    modes = {stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*") if p.is_file() and p.name != "theirs.txt"}
    assert modes == {0o644}
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*") if p.is_dir()} == {0o700}
    assert stat.S_IMODE(out.stat().st_mode) == (0o777 & ~old if existing else 0o700)


def test_a_stale_temporary_file_of_our_pid_is_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    stale = out / "a" / f".b.yaml.{os.getpid()}.fleetgen-tmp"
    stale.write_text("left by a killed process\n")
    write(out, {"a/b.yaml": "b: 1\n"})
    assert (out / "a/b.yaml").read_text() == "b: 1\n" and not stale.exists()


@pytest.mark.parametrize("threads", [1, 4])
def test_error_in_a_worker_thread_is_the_first_in_plan_order(tmp_path: Path, threads: int) -> None:
    """A name too long for its temporary file fails in the write phase, on a worker thread: the error raised is
    the one of the first failing file in plan order (what one thread raises), no temporary file is left, and
    neither the manifest nor the stat cache is written."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    plan = _plan(400)
    write(out, dict(list(plan.items())[::2]), stat_cache=cache)  # half of it: the other half is created below
    before, cache_before = tree_digest(out), tree_digest(cache)
    long_names = [f"fleet/clusters/cluster-0{n}/{'x' * 240}-{n}.yaml" for n in (30, 11)]  # mid-plan, 2nd first
    bad = {**plan, **{rel: "x: 1\n" for rel in long_names}}
    with pytest.raises(OSError) as raised:
        write(out, bad, stat_cache=cache, threads=threads)
    assert raised.value.filename.endswith(f"-11.yaml.{os.getpid()}.fleetgen-tmp")
    assert not [p for p in out.rglob("*") if p.name.endswith(".fleetgen-tmp")]
    after = tree_digest(out)
    assert after[MANIFEST] == before[MANIFEST] and tree_digest(cache) == cache_before
    # every file is whole (planned bytes, or absent), every one before the failing file in plan order is written
    assert all(after.get(rel) in (None, writer.sha256(text)) for rel, text in plan.items())
    first_bad = sorted(bad).index(long_names[1])
    assert all(rel in after for rel in sorted(bad)[:first_bad])


def test_render_keeps_the_stat_cache_under_the_fleet_root(fleet_root: Path) -> None:
    out = fleet_root / "out"
    render(fleet_root, out, check=True)
    assert not stat_cache_dir(fleet_root).exists()  # --check writes nothing, the cache included
    render(fleet_root, out)
    cache = stat_cache_dir(fleet_root)
    assert (cache / ".gitignore").read_text().endswith("*\n")
    recorded = _read_cache(_cache_file(cache))
    manifest = json.loads((out / MANIFEST).read_text())["files"]
    digests = [recorded["digests"][n : n + 64] for n in range(0, len(recorded["digests"]), 64)]
    assert dict(zip(recorded["paths"].split("\n"), digests, strict=True)) == manifest
    assert not (out / ".cache").exists()
    cache_state = StatCache(cache, out)
    cache_state.load()
    assert cache_state.loaded and cache_state.paths == sorted(manifest)
    assert UNKNOWN not in cache_state.aligned(cache_state.paths)[0]  # every file's stat recorded when written
    assert cache_state.manifest(writer._manifest_key(out)) == manifest
    assert render(fleet_root, out, check=True).clean


def test_threads_raise_the_error_a_serial_loop_would_raise() -> None:
    """A later file failing first (in time) does not hide an earlier one failing later: the lowest index wins,
    and every index below it ran."""
    ran: set[int] = set()

    def work(index: int) -> None:
        ran.add(index)
        if index == 5:
            time.sleep(0.3)
            raise ValueError(index)
        if index == 50:
            raise ValueError(index)

    with pytest.raises(ValueError) as raised:
        writer._for_each(500, work, 4)
    assert raised.value.args == (5,)
    assert set(range(51)) <= ran


def test_after_a_few_changed_files_the_next_compare_reads_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The edit loop changes one or two files (and the manifest): the cache is rewritten with their new stat, so
    the next render reads no file and does not parse the manifest; an unchanged tree does not rewrite it."""
    out, cache, plan = tmp_path / "out", tmp_path / "cache", _plan()
    write(out, plan, stat_cache=cache)
    _settled(out, plan, cache)
    before = _cache_file(cache).stat()
    assert write(out, plan, stat_cache=cache).clean
    assert _cache_file(cache).stat().st_ino == before.st_ino
    one = sorted(plan)[17]
    edited = {**plan, one: plan[one] + "# one\n"}
    assert write(out, edited, stat_cache=cache).updated == [one]
    assert _cache_file(cache).stat().st_ino != before.st_ino
    _settled(out, edited, cache)
    reads = _reads(monkeypatch)
    parsed: list[str] = []
    real_parse = writer.parse_manifest

    def parse(text: str, display: str) -> dict[str, str]:
        parsed.append(display)
        return real_parse(text, display)

    monkeypatch.setattr(writer, "parse_manifest", parse)
    assert compare(out, edited, stat_cache=cache).unchanged == len(plan)
    assert reads == [] and parsed == []
    assert compare(out, plan, stat_cache=cache).updated == [one]  # the plan, not the disk, changed: nothing read
    assert reads == [] and parsed == []
    (out / MANIFEST).write_text((out / MANIFEST).read_text())  # same bytes, new stat: read and parsed again
    assert compare(out, edited, stat_cache=cache).clean and len(parsed) == 1


# --- a new output folder: written whole into a staging folder, renamed into place ---------------------------------


def _many() -> dict[str, str]:
    """Enough small files that the new-output path creates them on threads (in chunks of 32)."""
    return {f"d{n % 50}/f{n}.yaml": f"n: {n}\n" for n in range(4000)}


def _staging_left(parent: Path) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.endswith(".fleetgen-new")]


def test_new_output_is_what_writing_into_an_existing_folder_gives(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The staging path (``out`` missing) and the plain path (``out`` an existing, empty folder) give the same
    files, bytes, modes, manifest, changes and a stat cache that knows every file without reading it."""
    plan = _plan()
    new, existing = tmp_path / "new", tmp_path / "existing"
    existing.mkdir()
    results = [_changes(write(new, plan, stat_cache=tmp_path / "cache-new")),
               _changes(write(existing, plan, stat_cache=tmp_path / "cache-existing"))]
    assert results[0] == results[1] and results[0][0] == sorted(plan)
    assert tree_digest(new) == tree_digest(existing)

    def modes(root: Path) -> dict[str, int]:
        return {p.relative_to(root).as_posix(): stat.S_IMODE(p.lstat().st_mode) for p in root.rglob("*")}

    assert modes(new) == modes(existing)
    assert stat.S_IMODE(new.stat().st_mode) == stat.S_IMODE(existing.stat().st_mode)
    assert _staging_left(tmp_path) == []
    _settled(new, plan, tmp_path / "cache-new")
    reads = _reads(monkeypatch)
    assert compare(new, plan, stat_cache=tmp_path / "cache-new").unchanged == len(plan) and reads == []
    (new / sorted(plan)[3]).write_text("# hand edit\n")
    with pytest.raises(OutputConflict):
        write(new, plan, stat_cache=tmp_path / "cache-new")


@pytest.mark.parametrize("threads", [1, 4])
def test_a_failing_new_output_writes_nothing(tmp_path: Path, threads: int) -> None:
    """A file that cannot be created (its name too long) fails the write: no output folder, no staging folder,
    no stat cache."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    plan = {**_many(), f"d7/{'x' * 300}.yaml": "x: 1\n"}
    with pytest.raises(OSError):
        write(out, plan, stat_cache=cache, threads=threads)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_interrupted_new_output_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C in the middle of the files (on the writer threads): the interrupt goes on, nothing is left."""
    out, plan = tmp_path / "sub" / "out", _many()
    real, calls = writer._create, []

    def interrupted(path: str, data: bytes) -> writer.StatKey:
        calls.append(path)
        if len(calls) == 120:
            raise KeyboardInterrupt
        return real(path, data)

    monkeypatch.setattr(writer, "_create", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write(out, plan, stat_cache=tmp_path / "cache", threads=4)
    assert len(calls) >= 120 and list((tmp_path / "sub").iterdir()) == [] and not (tmp_path / "cache").exists()
    monkeypatch.setattr(writer, "_create", real)
    assert write(out, plan).created == sorted(plan)  # and a later render writes it all
    assert tree_digest(out).keys() == {*plan, MANIFEST}


def test_an_output_folder_appearing_meanwhile_is_written_as_an_existing_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone creates ``out`` (with a file of theirs) while fleetgen fills its staging folder: the staging folder
    is dropped, the plan written into ``out`` as into any existing folder, their file kept."""
    out, plan = tmp_path / "out", _plan(80)
    real = writer._create

    def racing(path: str, data: bytes) -> writer.StatKey:
        if not out.exists():
            out.mkdir()
            (out / "theirs.txt").write_text("mine\n")
        return real(path, data)

    monkeypatch.setattr(writer, "_create", racing)
    changes = write(out, plan, stat_cache=tmp_path / "cache")
    assert changes.created == sorted(plan)
    assert tree_digest(out).keys() == {*plan, MANIFEST, "theirs.txt"} and _staging_left(tmp_path) == []


def test_a_stale_staging_folder_of_our_pid_is_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    stale = tmp_path / f".out.{os.getpid()}.fleetgen-new"
    (stale / "fleet").mkdir(parents=True)
    (stale / "fleet" / "old.yaml").write_text("left by a killed process\n")
    write(out, {"a/b.yaml": "b: 1\n"})
    assert tree_digest(out).keys() == {"a/b.yaml", MANIFEST} and not stale.exists()


def test_random_edits_give_the_same_changes_with_and_without_the_stat_cache(tmp_path: Path) -> None:
    """Two trees take the same random steps (plan edits, hand edits of the same size, deleted and foreign files,
    files rewritten with the same bytes): one through the stat cache, one read whole each time. The changes found
    and the trees written are the same at every step."""
    rng = random.Random(11)
    plan = _plan(120)
    cached, plain, cache = tmp_path / "cached", tmp_path / "plain", tmp_path / "cache"
    for step in range(30):
        for out in (cached, plain):
            assert out.exists() or step == 0
        op = rng.choice(["plan-edit", "plan-drop", "plan-add", "hand-edit", "delete", "foreign", "rewrite", "none"])
        if op == "plan-edit":
            rel = rng.choice(sorted(plan))
            plan = {**plan, rel: plan[rel] + f"# step {step}\n"}
        elif op == "plan-drop" and len(plan) > 10:
            plan = {k: v for k, v in plan.items() if k != rng.choice(sorted(plan))}
        elif op == "plan-add":
            plan = dict(sorted({**plan, f"fleet/clusters/new-{step}/x.yaml": f"step: {step}\n"}.items()))
        elif step and op in ("hand-edit", "delete", "foreign", "rewrite"):
            rel = rng.choice(sorted(plan))
            for out in (cached, plain):
                path = out / rel
                if op == "foreign":
                    (out / f"theirs-{step}.txt").write_text("mine\n")
                elif not path.exists():
                    continue
                elif op == "hand-edit":
                    data = path.read_bytes()
                    path.write_bytes(data[:-2] + (b"Y\n" if data[-2:] != b"Y\n" else b"Z\n"))  # same size
                elif op == "delete":
                    path.unlink()
                else:
                    path.write_bytes(path.read_bytes())
        with_cache, without = compare(cached, plan, stat_cache=cache), compare(plain, plan)
        assert _changes(with_cache) == _changes(without), (step, op)
        written = [write(cached, plan, force=True, stat_cache=cache), write(plain, plan, force=True, threads=1)]
        assert _changes(written[0]) == _changes(written[1]), (step, op)
        assert tree_digest(cached) == tree_digest(plain), (step, op)
        assert compare(cached, plan, stat_cache=cache).clean


# --- the fast paths of a warm compare ---------------------------------------------------------------------------


def test_stats_with_missing_files_anywhere_are_the_per_file_stats(tmp_path: Path) -> None:
    """The stats are taken by C calls that stop at a missing file and resume after it: the result is a stat per
    file in order, ``UNKNOWN`` and listed for each missing one, wherever the missing files are."""
    names = [f"d{n % 3}/f{n}.yaml" for n in range(40)]
    for gone in ([], [0], [39], [5, 6, 7], [0, 1, 20, 38, 39], list(range(40))):
        for rel in names:
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text(rel)
        for index in gone:
            (tmp_path / names[index]).unlink()
        flat, missing = writer._stat_keys(str(tmp_path), names)
        expected: list[int] = []
        for index, rel in enumerate(names):
            expected.extend(UNKNOWN if index in gone else writer._stat_key(os.stat(tmp_path / rel)))
        assert (list(flat), missing) == (expected, gone)


def test_known_digests_are_found_by_identity_only() -> None:
    text = "".join(["kind: ", "Namespace\n"])  # built at run time: not a constant another object could share
    equal = "".join(["kind: Name", "space\n"])
    known = writer.TextDigests()
    known.add(text, writer.sha256(text))
    assert known.get(text) == writer.sha256(text) and known.get(equal) is None and len(known) == 1
    plan = {"a.yaml": text, "b.yaml": equal, "c.yaml": "other\n"}
    assert writer._planned_digests(plan, known) == writer._planned_digests(plan) == [
        writer.sha256(t) for t in plan.values()]


def test_writes_with_known_digests_are_the_writes_without(tmp_path: Path) -> None:
    """Digests handed to the writer (as the plan cache does) change nothing: the same changes, the same trees,
    through every kind of step (plan edits, hand edits, deleted and added files)."""
    rng = random.Random(3)
    plan = _plan(120)
    cache = tmp_path / "cache"
    for step in range(12):
        known = writer.TextDigests()
        for text in rng.sample(list(plan.values()), len(plan) // 2):
            known.add(text, writer.sha256(text))
        results, trees = [], []
        for out, digests in ((tmp_path / "known", known), (tmp_path / "plain", None)):
            if step % 4 == 3 and out.exists():  # a hand-deleted file, restored
                (out / sorted(plan)[step]).unlink(missing_ok=True)
            results.append(_changes(write(out, plan, force=True, stat_cache=cache if digests else None,
                                          known=digests)))
            trees.append(tree_digest(out))
        assert results[0] == results[1] and trees[0] == trees[1], step
        rel = rng.choice(sorted(plan))
        plan = dict(sorted({**plan, rel: plan[rel] + f"# {step}\n", f"fleet/new-{step}/x.yaml": f"{step}\n"}.items()))


def test_stale_records_found_by_runs_are_those_found_name_by_name(tmp_path: Path) -> None:
    """Names aligned with the stat cache's record by runs (a created or dropped file splits a run) give the same
    stale names as comparing each name's stat with its record one by one."""
    out, cache_dir, plan = tmp_path / "out", tmp_path / "cache", _plan(200)
    write(out, plan, stat_cache=cache_dir)
    cache = StatCache(cache_dir, out)
    cache.load()
    rng = random.Random(7)
    recorded = dict(zip(cache.paths, cache.key_list(), strict=True))
    for _ in range(60):
        names = [name for name in cache.paths if rng.random() > 0.05]  # some dropped
        for _ in range(rng.randint(0, 4)):  # some created, anywhere
            names.insert(rng.randint(0, len(names)), f"new/{rng.random()}.yaml")
        if rng.random() < 0.3:
            rng.shuffle(names)
        keys = [recorded.get(name, UNKNOWN) if rng.random() > 0.1 else (rng.randint(0, 9), 1, 2, 3) for name in names]
        flat = array("q", [n for key in keys for n in key])
        expected = {index for index, (name, key) in enumerate(zip(names, keys, strict=True))
                    if name not in recorded or recorded[name] != key}
        assert cache.stale(names, flat) == expected


def test_patched_manifest_is_the_manifest_written_anew(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A manifest known from the stat cache is patched where digests changed: byte for byte the manifest written
    anew (``json.dumps``), also when a changed file already held its new text on disk (read, not reported, but
    its line changes); a manifest not of the recorded length, or missing a changed line, is written anew."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    plan = {rel: text for rel, text in _plan(200).items() if rel.isascii()}
    write(out, plan, stat_cache=cache)
    _settled(out, plan, cache)
    patched: list[bool] = []
    real = writer._patched_manifest

    def spy(*args: Any) -> bytes | None:
        result = real(*args)
        patched.append(result is not None)
        return result

    monkeypatch.setattr(writer, "_patched_manifest", spy)
    rng = random.Random(9)
    for step in range(8):
        edited = rng.sample(sorted(plan), rng.randint(1, 3))
        plan = {**plan, **{rel: plan[rel] + f"# {step}\n" for rel in edited}}
        if step % 2:
            (out / edited[0]).write_text(plan[edited[0]], encoding="utf-8")  # already on disk: unchanged
        changes = write(out, plan, stat_cache=cache)
        assert changes.updated == sorted(edited[step % 2 :])
        expected = {"files": {rel: writer.sha256(text) for rel, text in plan.items()}, "generator": "fleetgen"}
        assert (out / MANIFEST).read_text() == json.dumps(expected, indent=2, sort_keys=True) + "\n"
        _settled(out, plan, cache)
    assert patched and all(patched)
    recorded = StatCache(cache, out)
    recorded.load()
    name = recorded.paths[0]
    change = [(name, 0, "0" * 64)]
    assert real(out / MANIFEST, recorded.joined, recorded.digests, change) is not None
    (out / MANIFEST).write_bytes((out / MANIFEST).read_bytes() + b" ")
    assert real(out / MANIFEST, recorded.joined, recorded.digests, change) is None  # not the recorded length
    text = (out / MANIFEST).read_bytes()[:-1]
    (out / MANIFEST).write_bytes(text.replace(recorded.digests[:64].encode(), b"f" * 64))
    assert real(out / MANIFEST, recorded.joined, recorded.digests, change) is None  # the changed line not there
