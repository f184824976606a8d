'use strict';

// A JSON reader and writer that round-trips MongoDB Extended JSON exactly.
//
// JSON.parse is not good enough for documents: it turns 3.0 into 3, which
// reads back as an int32 instead of a double, and it moves keys that look
// like integers ("10", "2") in front of the others. Here objects are Maps
// (insertion order, whatever the keys), numbers keep their text (Num), and
// strings, booleans and null are plain JavaScript values.

class Num {
  constructor(raw) {
    this.raw = raw;
  }
}

class ParseError extends Error {}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const WHITESPACE = /[ \t\n\r]*/y;

function parse(text) {
  let i = 0;
  const fail = (what) => {
    throw new ParseError(`${what} at offset ${i}`);
  };
  const skip = () => {
    WHITESPACE.lastIndex = i;
    WHITESPACE.exec(text);
    i = WHITESPACE.lastIndex;
  };
  const string = () => {
    const start = i;
    i++; // opening quote
    for (;;) {
      const c = text.charCodeAt(i);
      if (Number.isNaN(c)) fail('unterminated string');
      if (c === 0x22) break; // "
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c < 0x20) fail('control character in string');
      i++;
    }
    i++;
    try {
      return JSON.parse(text.slice(start, i));
    } catch (e) {
      i = start;
      return fail('bad string');
    }
  };
  const value = (depth) => {
    if (depth > 200) fail('nesting too deep');
    skip();
    const c = text[i];
    if (c === '{') {
      i++;
      const m = new Map();
      skip();
      if (text[i] === '}') {
        i++;
        return m;
      }
      for (;;) {
        skip();
        if (text[i] !== '"') fail('expected a key');
        const k = string();
        skip();
        if (text[i] !== ':') fail("expected ':'");
        i++;
        m.set(k, value(depth + 1));
        skip();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return m;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      i++;
      const a = [];
      skip();
      if (text[i] === ']') {
        i++;
        return a;
      }
      for (;;) {
        a.push(value(depth + 1));
        skip();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return a;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    for (const [word, v] of [['true', true], ['false', false], ['null', null]]) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (m === null) fail('unexpected character');
    i = NUMBER.lastIndex;
    return new Num(m[0]);
  };
  const v = value(0);
  skip();
  if (i !== text.length) fail('trailing characters');
  return v;
}

function stringify(v) {
  if (v instanceof Map) {
    const parts = [];
    for (const [k, x] of v) parts.push(JSON.stringify(k) + ':' + stringify(x));
    return '{' + parts.join(',') + '}';
  }
  if (Array.isArray(v)) return '[' + v.map(stringify).join(',') + ']';
  if (v instanceof Num) return v.raw;
  return JSON.stringify(v); // string, boolean, null
}

module.exports = { parse, stringify, Num, ParseError };
