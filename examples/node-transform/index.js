'use strict';

// upper: a dsync transform plugin in Node.js.
//
//   dsync sync SOURCE SINK --transform upper:name,address.city
//
// The spec lists fields, as dotted paths, whose string values are
// upper-cased, in copied documents and in change events: inserts and
// replaces carry whole documents; a partial update is transformed where it
// sets one of the fields (or a document that contains one). Values that are
// not strings, and _id, are never changed; deletes pass through. Output keeps
// the input's namespace and order, and is a pure function of the input.
//
// The transform speaks DATA_TYPE_JSON (relaxed MongoDB Extended JSON) only:
// dsync converts from and to BSON. Documents are read with extjson.js, which
// keeps field order and the text of every number.

const grpc = require('@grpc/grpc-js');
const extjson = require('./extjson');
const { serve, load, log } = require('./goplugin');

const JSON_TYPE = 2; // DATA_TYPE_JSON
const UPDATE_TYPES = { INSERT: 1, UPDATE: 2, DELETE: 3, PARTIAL: 4 };

class Failure extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const invalid = (message) => new Failure(grpc.status.INVALID_ARGUMENT, message);

// parseSpec turns "name,address.city" into [["name"], ["address", "city"]].
function parseSpec(spec) {
  if (spec.trim() === '') {
    throw invalid('upper needs the fields to upper-case, e.g. --transform upper:name,address.city');
  }
  return spec.split(',').map((raw) => {
    const field = raw.trim();
    const parts = field.split('.');
    if (field === '' || parts.some((p) => p === '' || p.startsWith('$') || /\s/.test(p))) {
      throw invalid(`${JSON.stringify(field)} is not a field path such as name or address.city`);
    }
    if (parts[0] === '_id') {
      throw invalid('upper cannot change _id: it identifies the document in the sink');
    }
    return parts;
  });
}

function upper(v) {
  return typeof v === 'string' ? v.toUpperCase() : v;
}

// applyPath upper-cases the value at path inside v (a Map or an array),
// in place. A path goes through documents only.
function applyPath(v, path) {
  if (!(v instanceof Map)) return;
  const [head, ...rest] = path;
  if (!v.has(head)) return;
  if (rest.length === 0) {
    v.set(head, upper(v.get(head)));
  } else {
    applyPath(v.get(head), rest);
  }
}

function parseDoc(buf, what) {
  let v;
  try {
    v = extjson.parse(buf.toString('utf8'));
  } catch (e) {
    throw invalid(`${what} is not JSON: ${e.message}`);
  }
  if (!(v instanceof Map)) throw invalid(`${what} is not a JSON object`);
  return v;
}

function transformDoc(fields, buf, what) {
  const doc = parseDoc(buf, what);
  if (!doc.has('_id')) throw invalid(`${what} has no _id`);
  for (const path of fields) applyPath(doc, path);
  return Buffer.from(extjson.stringify(doc));
}

// transformSet applies the fields to the "set" document of a partial
// update, whose keys are dotted paths.
function transformSet(fields, buf, what) {
  const set = parseDoc(buf, what);
  for (const [key, value] of set) {
    const keyPath = key.split('.');
    for (const path of fields) {
      if (keyPath.length > path.length || !keyPath.every((p, i) => p === path[i])) continue;
      if (keyPath.length === path.length) {
        set.set(key, upper(value));
      } else {
        applyPath(value, path.slice(keyPath.length));
      }
    }
  }
  return Buffer.from(extjson.stringify(set));
}

function transformUpdate(fields, u, i) {
  const what = `update ${i}`;
  const id = parseDoc(u.id, `the id of ${what}`);
  if (!id.has('_id')) throw invalid(`the id of ${what} has no _id`);
  const out = { id: u.id, type: u.type, data: u.data, unset_fields: u.unset_fields };
  switch (u.type) {
    case UPDATE_TYPES.INSERT:
    case UPDATE_TYPES.UPDATE:
      if (u.data.length === 0) throw invalid(`${what} has no document`);
      out.data = transformDoc(fields, u.data, `the document of ${what}`);
      break;
    case UPDATE_TYPES.PARTIAL:
      if (u.data.length > 0) out.data = transformSet(fields, u.data, `the fields of ${what}`);
      break;
    case UPDATE_TYPES.DELETE:
      break;
    default:
      throw invalid(`${what} has unknown type ${u.type}`);
  }
  return out;
}

class Upper {
  constructor() {
    this.fields = null; // set by Configure
  }

  GetTransformInfo(call, callback) {
    callback(null, { accepted_data_types: [JSON_TYPE], produced_data_types: [JSON_TYPE] });
  }

  Configure(call, callback) {
    this.fields = parseSpec(call.request.spec);
    log('info', 'configured', { fields: this.fields.map((p) => p.join('.')) });
    callback(null, {});
  }

  Transform(call, callback) {
    if (this.fields === null) {
      throw new Failure(grpc.status.FAILED_PRECONDITION, 'not configured: Configure must be called first');
    }
    const req = call.request;
    if (req.data_type !== JSON_TYPE) throw invalid(`upper accepts DATA_TYPE_JSON only, not data type ${req.data_type}`);
    if (req.output_data_type !== 0 && req.output_data_type !== JSON_TYPE) {
      throw invalid(`upper produces DATA_TYPE_JSON only, not data type ${req.output_data_type}`);
    }
    const batch = { namespace: req.namespace, data: [], updates: [] };
    if (req.updates.length > 0) {
      batch.updates = req.updates.map((u, i) => transformUpdate(this.fields, u, i));
    } else {
      batch.data = req.data.map((d, i) => transformDoc(this.fields, d, `document ${i}`));
    }
    const empty = batch.data.length === 0 && batch.updates.length === 0;
    callback(null, { batches: empty ? [] : [batch] });
  }
}

// handlers binds the methods of impl and turns thrown Failures into gRPC
// statuses; anything else is INTERNAL.
function handlers(impl, names) {
  const out = {};
  for (const name of names) {
    out[name] = (call, callback) => {
      try {
        impl[name](call, callback);
      } catch (e) {
        if (e instanceof Failure) {
          callback({ code: e.code, details: e.message });
        } else {
          log('error', `${name} failed: ${e.stack}`);
          callback({ code: grpc.status.INTERNAL, details: `${name}: ${e.message}` });
        }
      }
    };
  }
  return out;
}

function main() {
  serve((server) => {
    const svc = load('dsync/v1/dsync.proto').dsync.v1.TransformService.service;
    server.addService(svc, handlers(new Upper(), ['GetTransformInfo', 'Configure', 'Transform']));
  });
}

if (require.main === module) main();

module.exports = { parseSpec, transformDoc, transformSet };
