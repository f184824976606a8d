"""jsondir: a dsync source and sink connector over a directory of JSON-lines
files, in Python.

    jsondir:///absolute/path/to/dir?page=1000&partition=100000

Each namespace is one file <namespace>.jsonl in the directory, one document
per line in relaxed MongoDB Extended JSON (the protocol's DATA_TYPE_JSON,
the only data type this connector speaks: dsync converts from and to BSON).

Source: the default plan covers every *.jsonl file; a namespace is cut into
partitions of `partition` lines (the last one is open-ended). ListData cursors
are line offsets, so they stay valid after a restart as long as the file is
not rewritten during the copy; a cache of byte offsets keeps reading a
partition one pass over the file. GetByIds looks documents up by _id.

Sink: WriteData inserts or replaces by _id; WriteUpdates applies inserts,
replaces, partial updates (dotted paths) and deletes in order. A replaced
document keeps its line. Writes of new ids only are appended; anything else
rewrites the file into a temporary file that replaces it. Both are fsynced
before the call returns, so they are durable, and both are idempotent.

Numbers compare by value as _id (1, 1.0 and {"$numberLong": "1"} are the same
id), as in MongoDB.

The environment variable JSONDIR_FAULT=duplicate-writes turns the sink into a
broken one whose WriteData appends every document without replacing the
previous version: the conformance suite must catch it.
"""

import datetime
import json
import os
import sys
import threading
import traceback
import urllib.parse

import grpc

import goplugin
from dsync.v1 import dsync_pb2, dsync_pb2_grpc

VERSION = "0.1.0"
SCHEME = "jsondir"
SUFFIX = ".jsonl"
JSON = dsync_pb2.DATA_TYPE_JSON

DEFAULT_PAGE = 1000
DEFAULT_PARTITION = 100000
MAX_OPTION = 1000000
# Pages are also cut by size so that a page fits well within a gRPC message.
PAGE_BYTES = 4 << 20

FAULT = os.environ.get("JSONDIR_FAULT", "")


class Failure(Exception):
    """An error with the gRPC status code that classifies it for dsync:
    INVALID_ARGUMENT is shown to the user, UNAVAILABLE is retried,
    FAILED_PRECONDITION and INTERNAL stop the run."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message):
    return Failure(grpc.StatusCode.INVALID_ARGUMENT, message)


def rpc(method):
    """Turns Failure into the gRPC status and anything unexpected into
    INTERNAL (logged with its traceback)."""

    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except Failure as f:
            context.abort(f.code, f.message)
        except OSError as e:
            goplugin.log("error", "%s: %s" % (method.__name__, e))
            context.abort(grpc.StatusCode.UNAVAILABLE, "%s: %s" % (method.__name__, e))
        except Exception as e:  # noqa: BLE001 - the boundary of the RPC
            goplugin.log("error", "%s failed: %s" % (method.__name__, e), traceback=traceback.format_exc())
            context.abort(grpc.StatusCode.INTERNAL, "%s: %s" % (method.__name__, e))

    wrapper.__name__ = method.__name__
    return wrapper


def enum_name(enum, value):
    return enum.Name(value) if value in enum.values() else str(value)


def check_active(context):
    if not context.is_active():
        raise Failure(grpc.StatusCode.CANCELLED, "call cancelled")


# ---- connection string ------------------------------------------------------


class Config:
    def __init__(self, directory, page, partition):
        self.dir = directory
        self.page = page
        self.partition = partition


def parse_url(raw):
    usage = "want jsondir:///absolute/path/to/dir[?page=N&partition=N]"
    if not raw:
        raise invalid("empty connection string: " + usage)
    try:
        u = urllib.parse.urlsplit(raw)
    except ValueError as e:
        raise invalid("not a URL (%s): %s" % (e, usage))
    if u.scheme.lower() != SCHEME:
        raise invalid("the scheme is %r, not jsondir: %s" % (u.scheme, usage))
    if u.netloc:
        raise invalid("jsondir URLs have no host (%r): %s" % (u.hostname or u.netloc, usage))
    if u.fragment:
        raise invalid("jsondir URLs have no #fragment: " + usage)
    path = urllib.parse.unquote(u.path)
    if not path.startswith("/"):
        raise invalid("the directory must be an absolute path: " + usage)
    options = {"page": DEFAULT_PAGE, "partition": DEFAULT_PARTITION}
    seen = set()
    for key, value in urllib.parse.parse_qsl(u.query, keep_blank_values=True):
        if key not in options:
            raise invalid("unknown option %r: jsondir takes page=N and partition=N" % key)
        if key in seen:
            raise invalid("option %r is given twice" % key)
        seen.add(key)
        try:
            n = int(value)
        except ValueError:
            n = 0
        if not 1 <= n <= MAX_OPTION:
            raise invalid("option %s=%r: want a whole number from 1 to %d" % (key, value, MAX_OPTION))
        options[key] = n
    path = os.path.realpath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise invalid("%s is not a directory" % path)
    if not os.path.isdir(os.path.dirname(path)):
        raise invalid("the parent directory of %s does not exist" % path)
    return Config(path, options["page"], options["partition"])


def check_namespace(ns):
    if not ns or ns.startswith(".") or "/" in ns or "\\" in ns or "\x00" in ns or len(ns.encode()) > 200:
        raise invalid("namespace %r cannot name a file: it must be 1 to 200 bytes without '/', '\\' "
                      "or NUL and must not start with '.'" % ns)


# ---- documents --------------------------------------------------------------


def parse_doc(data, what):
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise invalid("%s is not JSON: %s" % (what, e))
    if not isinstance(doc, dict):
        raise invalid("%s is not a JSON object" % what)
    return doc


def dump(doc):
    """Serialises a document as one line. Python keeps integers and floats
    apart (1 vs 1.0), which relaxed Extended JSON relies on."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode()


def one_line(data, doc):
    """The bytes to store for a document: as received when they are one
    line, else re-serialised."""
    if b"\n" in data or b"\r" in data:
        return dump(doc)
    return bytes(data)


def _number_key(f):
    if f == f and f not in (float("inf"), float("-inf")) and f.is_integer() and abs(f) < 2 ** 53:
        return "n:%d" % int(f)
    return "d:" + repr(f)


def _date_millis(v):
    if isinstance(v, str):
        try:
            d = datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return None
        return int(d.timestamp() * 1000)
    if isinstance(v, dict) and len(v) == 1 and "$numberLong" in v:
        try:
            return int(v["$numberLong"])
        except (TypeError, ValueError):
            return None
    return None


def id_key(v):
    """The identity of an _id value: numbers by value, whatever their form;
    canonical and relaxed forms of dates alike; anything else by its JSON."""
    if isinstance(v, bool):
        return "b:%d" % v
    if isinstance(v, int):
        return "n:%d" % v
    if isinstance(v, float):
        return _number_key(v)
    if isinstance(v, dict) and len(v) == 1:
        (k, x), = v.items()
        try:
            if k in ("$numberInt", "$numberLong"):
                return "n:%d" % int(x)
            if k == "$numberDouble":
                return _number_key(float(x))
        except (TypeError, ValueError):
            pass
        if k == "$date":
            ms = _date_millis(x)
            if ms is not None:
                return "t:%d" % ms
    return "j:" + json.dumps(v, separators=(",", ":"), ensure_ascii=True)


def id_of(data, what):
    doc = parse_doc(data, what)
    if "_id" not in doc:
        raise invalid("%s has no _id field" % what)
    return doc, doc["_id"]


def _is_container(v):
    # Extended JSON wrappers ({"$date": ...}) are values, not documents.
    if isinstance(v, list):
        return True
    return isinstance(v, dict) and not (v and next(iter(v)).startswith("$"))


def _index(key):
    if key.isdigit() and (key == "0" or not key.startswith("0")):
        return int(key)
    return None


def set_path(doc, parts, value):
    """$set of a dotted path. Missing documents on the way are created; a
    value on the way that is not a document is replaced by one, so that
    replaying changes from an earlier position converges."""
    cur = doc
    for i, key in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(cur, list):
            n = _index(key)
            if n is None or n > len(cur) + MAX_OPTION:
                raise invalid("cannot set %r: %r is not an array index" % (".".join(parts), key))
            while len(cur) <= n:
                cur.append(None)
            if last:
                cur[n] = value
                return
            if not _is_container(cur[n]):
                cur[n] = {}
            cur = cur[n]
            continue
        if last:
            cur[key] = value
            return
        if not _is_container(cur.get(key)):
            cur[key] = {}
        cur = cur[key]


def unset_path(doc, parts):
    cur = doc
    for i, key in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(cur, list):
            n = _index(key)
            if n is None or n >= len(cur):
                return
            if last:
                cur[n] = None  # as MongoDB: $unset of an array element leaves null
                return
            cur = cur[n]
        elif isinstance(cur, dict):
            if key not in cur:
                return
            if last:
                del cur[key]
                return
            cur = cur[key]
        else:
            return
        if not _is_container(cur):
            return


# ---- files ------------------------------------------------------------------


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_identity(path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def read_lines(path):
    """Every complete line of the file. A last line without its newline is
    an interrupted append, never acknowledged: it is ignored."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n") + 1
    return data[:end].splitlines(), end


class Table:
    """A namespace held in memory: _id key -> line, in file order."""

    def __init__(self, path):
        self.path = path
        self.identity = None
        self.rows = {}
        self.clean_size = 0  # bytes of complete lines


class Store:
    def __init__(self, cfg):
        self.cfg = cfg
        self.lock = threading.Lock()
        self.ns_locks = {}
        self.tables = {}
        # (path, file identity, line) -> byte offset of that line: lets a
        # partition be read in one pass while its file does not change.
        self.offsets = {}

    def path(self, ns):
        check_namespace(ns)
        return os.path.join(self.cfg.dir, ns + SUFFIX)

    def namespaces(self):
        try:
            names = os.listdir(self.cfg.dir)
        except FileNotFoundError:
            return []
        return sorted(n[: -len(SUFFIX)] for n in names
                      if n.endswith(SUFFIX) and not n.startswith(".") and len(n) > len(SUFFIX))

    def ns_lock(self, ns):
        with self.lock:
            return self.ns_locks.setdefault(ns, threading.Lock())

    def table(self, ns):
        """The namespace's table, reloaded when the file changed. Hold the
        namespace lock."""
        path = self.path(ns)
        t = self.tables.get(ns)
        if t is None:
            t = self.tables[ns] = Table(path)
        ident = file_identity(path)
        if t.identity != ident or ident is None:
            lines, t.clean_size = read_lines(path)
            t.rows = {}
            for n, line in enumerate(lines):
                if not line.strip():
                    continue
                _, v = id_of(line, "line %d of %s" % (n + 1, path))
                t.rows[id_key(v)] = line  # the last version of an id wins
            t.identity = ident
        return t

    def append(self, t, lines):
        os.makedirs(self.cfg.dir, exist_ok=True)
        new = not os.path.exists(t.path)
        with open(t.path, "ab") as f:
            if f.tell() != t.clean_size:
                f.truncate(t.clean_size)  # drop an interrupted append
            f.write(b"".join(line + b"\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())
            t.clean_size = f.tell()
        if new:
            fsync_dir(self.cfg.dir)
        t.identity = file_identity(t.path)

    def rewrite(self, t):
        os.makedirs(self.cfg.dir, exist_ok=True)
        tmp = os.path.join(self.cfg.dir, ".%s.tmp-%d" % (os.path.basename(t.path), os.getpid()))
        with open(tmp, "wb") as f:
            f.write(b"".join(line + b"\n" for line in t.rows.values()))
            f.flush()
            os.fsync(f.fileno())
            size = f.tell()
        os.replace(tmp, t.path)
        fsync_dir(self.cfg.dir)
        t.clean_size = size
        t.identity = file_identity(t.path)

    def count(self, ns):
        lines, size = read_lines(self.path(ns))
        return sum(1 for line in lines if line.strip()), size


# ---- partitions and cursors -------------------------------------------------


def partition_cursor(start, end):
    return json.dumps({"start": start, "end": end}, separators=(",", ":")).encode()


def parse_partition(p):
    try:
        d = json.loads(p.cursor)
        start, end = d["start"], d["end"]
        if not isinstance(start, int) or start < 0 or not (end is None or (isinstance(end, int) and end >= start)):
            raise ValueError
    except (ValueError, TypeError, KeyError):
        raise invalid("partition %r of namespace %r was not made by this connector" % (bytes(p.cursor), p.namespace))
    return start, end


def parse_line_cursor(cursor, start, end):
    if not cursor:
        return start
    try:
        n = int(cursor.decode())
    except (ValueError, UnicodeDecodeError):
        n = -1
    if n < start or (end is not None and n > end):
        raise invalid("cursor %r is not a line offset of this partition" % bytes(cursor))
    return n


# ---- the service ------------------------------------------------------------


class JsonDir(dsync_pb2_grpc.ConnectorServiceServicer):
    def __init__(self):
        self._lock = threading.Lock()
        self._store = None

    def store(self):
        with self._lock:
            if self._store is None:
                raise Failure(grpc.StatusCode.FAILED_PRECONDITION, "not configured: Configure must be called first")
            return self._store

    @staticmethod
    def want_json(data_type):
        if data_type != JSON:
            raise invalid("jsondir speaks DATA_TYPE_JSON only, not %s" % enum_name(dsync_pb2.DataType, data_type))

    @rpc
    def Configure(self, request, context):
        cfg = parse_url(request.url)
        with self._lock:
            self._store = Store(cfg)
        goplugin.log("info", "configured", dir=cfg.dir, page=cfg.page, partition=cfg.partition,
                     fault=FAULT or None)
        return dsync_pb2.ConfigureResponse()

    @rpc
    def GetInfo(self, request, context):
        s = self.store()
        return dsync_pb2.GetInfoResponse(
            id="jsondir:" + s.cfg.dir,
            db_type="jsondir",
            version=VERSION,
            protocol_version=1,
            capabilities=dsync_pb2.Capabilities(
                source=dsync_pb2.SourceCapabilities(
                    supported_data_types=[JSON], multi_namespace_plan=True, default_plan=True, get_by_ids=True,
                ),
                sink=dsync_pb2.SinkCapabilities(supported_data_types=[JSON]),
            ),
        )

    @rpc
    def GetNamespaceMetadata(self, request, context):
        n, size = self.store().count(request.namespace)
        return dsync_pb2.GetNamespaceMetadataResponse(count=n, size_bytes=size)

    @rpc
    def GeneratePlan(self, request, context):
        s = self.store()
        if request.updates:
            raise Failure(grpc.StatusCode.UNIMPLEMENTED, "jsondir keeps no change history: use --mode initial")
        existing = set(s.namespaces())
        nss = list(request.namespaces) or sorted(existing)
        if len(set(nss)) != len(nss):
            raise invalid("a namespace is requested twice")
        for ns in nss:
            check_namespace(ns)
            if ns not in existing:
                raise invalid("namespace %r does not exist: there is no file %s%s in %s" % (ns, ns, SUFFIX, s.cfg.dir))
        resp = dsync_pb2.GeneratePlanResponse()
        if not request.initial_sync:
            return resp
        for ns in nss:
            check_active(context)
            n, _ = s.count(ns)
            start = 0
            while True:
                end = start + s.cfg.partition
                if end >= n:
                    resp.partitions.add(namespace=ns, cursor=partition_cursor(start, None), estimated_count=n - start)
                    break
                resp.partitions.add(namespace=ns, cursor=partition_cursor(start, end), estimated_count=end - start)
                start = end
        return resp

    @rpc
    def ListData(self, request, context):
        s = self.store()
        self.want_json(request.data_type)
        p = request.partition
        start, end = parse_partition(p)
        line = parse_line_cursor(request.cursor, start, end)
        path = s.path(p.namespace)
        resp = dsync_pb2.ListDataResponse()
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            return resp  # no file, no documents: the partition is done
        with f:
            ident = file_identity(path)
            offset = s.offsets.pop((path, ident, line), None)
            if offset is not None:
                f.seek(offset)
            else:
                for _ in range(line):
                    if not f.readline().endswith(b"\n"):
                        return resp
            size = 0
            while end is None or line < end:
                if len(resp.data) >= s.cfg.page or size >= PAGE_BYTES:
                    break
                if len(resp.data) % 100 == 0:
                    check_active(context)
                raw = f.readline()
                if not raw.endswith(b"\n"):
                    return resp  # end of file: done
                line += 1
                raw = raw.rstrip(b"\r\n")
                if raw.strip():
                    resp.data.append(raw)
                    size += len(raw)
            if end is not None and line >= end:
                return resp
            pos = f.tell()
            if not f.readline().endswith(b"\n"):
                return resp
            if len(s.offsets) > 10000:
                s.offsets.clear()
            s.offsets[(path, ident, line)] = pos
        resp.next_cursor = str(line).encode()
        return resp

    @rpc
    def GetByIds(self, request, context):
        s = self.store()
        self.want_json(request.data_type)
        keys = [id_key(id_of(b, "id %d" % i)[1]) for i, b in enumerate(request.ids)]
        with s.ns_lock(request.namespace):
            t = s.table(request.namespace)
            return dsync_pb2.GetByIdsResponse(data=[t.rows.get(k, b"") for k in keys])

    @rpc
    def WriteData(self, request, context):
        s = self.store()
        self.want_json(request.data_type)
        rows = []
        for i, data in enumerate(request.data):
            doc, v = id_of(data, "document %d" % i)
            rows.append((id_key(v), one_line(data, doc)))
        with s.ns_lock(request.namespace):
            t = s.table(request.namespace)
            check_active(context)
            keys = [k for k, _ in rows]
            try:
                if FAULT == "duplicate-writes" or (len(set(keys)) == len(keys) and not any(k in t.rows for k in keys)):
                    s.append(t, [line for _, line in rows])  # only new ids: append
                    t.rows.update(rows)
                else:
                    t.rows.update(rows)
                    s.rewrite(t)
            except BaseException:
                t.identity = None  # reload from the file next time
                raise
        return dsync_pb2.WriteDataResponse()

    @rpc
    def WriteUpdates(self, request, context):
        s = self.store()
        self.want_json(request.data_type)
        with s.ns_lock(request.namespace):
            t = s.table(request.namespace)
            try:
                self.apply_updates(t, request.updates)
                check_active(context)
                s.rewrite(t)
            except BaseException:
                t.identity = None  # the table holds changes the file does not: reload it
                raise
        return dsync_pb2.WriteUpdatesResponse()

    @staticmethod
    def apply_updates(t, updates):
        for i, u in enumerate(updates):
            _, v = id_of(u.id, "the id of update %d" % i)
            k = id_key(v)
            what = "update %d (%s)" % (i, enum_name(dsync_pb2.UpdateType, u.type))
            if u.type in (dsync_pb2.UPDATE_TYPE_INSERT, dsync_pb2.UPDATE_TYPE_UPDATE):
                if not u.data:
                    raise invalid("%s has no document" % what)
                doc = parse_doc(u.data, what)
                t.rows[k] = one_line(u.data, doc)
            elif u.type == dsync_pb2.UPDATE_TYPE_DELETE:
                t.rows.pop(k, None)
            elif u.type == dsync_pb2.UPDATE_TYPE_PARTIAL:
                cur = t.rows.get(k)
                # A partial update of a missing document creates it.
                doc = json.loads(cur) if cur is not None else {"_id": v}
                fields = parse_doc(u.data, what) if u.data else {}
                for path, value in fields.items():
                    parts = path.split(".")
                    if parts[0] != "_id":
                        set_path(doc, parts, value)
                for path in u.unset_fields:
                    parts = path.split(".")
                    if parts[0] != "_id":
                        unset_path(doc, parts)
                t.rows[k] = dump(doc)
            else:
                raise invalid("%s: unknown update type %d" % (what, u.type))


def main():
    goplugin.serve(lambda server: dsync_pb2_grpc.add_ConnectorServiceServicer_to_server(JsonDir(), server))


if __name__ == "__main__":
    main()
