#!/usr/bin/env node
// A small scalar autograd engine (micrograd-style) that speaks the conformance suite's JSON Lines
// protocol (docs/protocol.md) on stdin/stdout. Node.js standard library only.
//
//   conformance verify --impl "cmd:node examples/node/engine.js"
//
// Every number is a JS double (binary64), so it declares dtypes ["float64"]. Leaves may be tensors:
// a tensor is an array of scalar Values (row-major) and the ops broadcast like torch; the
// gradient of every element is still computed by the scalar engine below.
'use strict';

const readline = require('readline');

const PROTOCOL = 1;
const NAME = 'node-micrograd';
const VERSION = '0.1.0';

// --- the engine ----------------------------------------------------------------------------------

class Value {
  // parents: the Values this one was computed from; locals: ∂this/∂parent for each of them.
  // select: the op's backward *selects* (relu): where the local derivative is 0 nothing flows, not
  // even an infinite upstream gradient (torch uses where(), so 0·inf is 0 there, not NaN).
  constructor(data, parents = [], locals = [], select = false) {
    this.data = data;
    this.grad = 0;
    this.parents = parents;
    this.locals = locals;
    this.select = select;
  }
}

const OPS = {
  add: { arity: 2, fn: (a, b) => new Value(a.data + b.data, [a, b], [1, 1]) },
  sub: { arity: 2, fn: (a, b) => new Value(a.data - b.data, [a, b], [1, -1]) },
  mul: { arity: 2, fn: (a, b) => new Value(a.data * b.data, [a, b], [b.data, a.data]) },
  div: {
    arity: 2,
    fn: (a, b) => {
      const out = a.data / b.data;
      return new Value(out, [a, b], [1 / b.data, -out / b.data]);
    },
  },
  neg: { arity: 1, fn: (x) => new Value(-x.data, [x], [-1]) },
  pow_int: {
    arity: 1,
    attrs: { exponent: 2 },
    fn: (x, { exponent }) => {
      if (!Number.isInteger(exponent)) throw new Error(`pow_int: exponent ${exponent} is not an integer`);
      const local = exponent === 0 ? 0 : exponent * Math.pow(x.data, exponent - 1);
      return new Value(Math.pow(x.data, exponent), [x], [local]);
    },
  },
  // relu(x) = x for x >= 0 (so relu(-0) is -0, as torch), 0 below; relu'(0) = 0 (x > 0 passes)
  relu: { arity: 1, fn: (x) => new Value(x.data < 0 ? 0 : x.data, [x], [x.data > 0 ? 1 : 0], true) },
  tanh: {
    arity: 1,
    fn: (x) => {
      const t = Math.tanh(x.data);
      return new Value(t, [x], [1 - t * t]);
    },
  },
  exp: {
    arity: 1,
    fn: (x) => {
      const e = Math.exp(x.data);
      return new Value(e, [x], [e]);
    },
  },
  log: { arity: 1, fn: (x) => new Value(Math.log(x.data), [x], [1 / x.data]) },
  sigmoid: {
    arity: 1,
    fn: (x) => {
      const s = 1 / (1 + Math.exp(-x.data));
      return new Value(s, [x], [s * (1 - s)]);
    },
  },
};

// Reverse-mode sweep from several roots at once: an iterative depth-first post-order (no
// recursion, so a chain of any depth works), then the chain rule in reverse order with +=.
function topologicalOrder(roots) {
  const order = [];
  const seen = new Set();
  for (const root of roots) {
    if (seen.has(root)) continue;
    seen.add(root);
    const stack = [[root, 0]];
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const v = top[0];
      if (top[1] < v.parents.length) {
        const p = v.parents[top[1]++];
        if (!seen.has(p)) {
          seen.add(p);
          stack.push([p, 0]);
        }
      } else {
        stack.pop();
        order.push(v);
      }
    }
  }
  return order;
}

function backward(outputs, cotangent) {
  const order = topologicalOrder(outputs);
  for (const v of order) v.grad = 0;
  outputs.forEach((v, i) => { v.grad += cotangent[i]; });
  for (let k = order.length - 1; k >= 0; k--) {
    const v = order[k];
    for (let i = 0; i < v.parents.length; i++) {
      if (v.select && v.locals[i] === 0) continue;
      v.parents[i].grad += v.grad * v.locals[i];
    }
  }
}

// --- tensors of Values, with torch's broadcasting ------------------------------------------------

const prod = (shape) => shape.reduce((a, b) => a * b, 1);

function broadcastShapes(shapes) {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = [];
  for (let d = 0; d < rank; d++) {
    let size = 1;
    for (const s of shapes) {
      const n = s[s.length - rank + d] ?? 1;
      if (n !== 1 && size !== 1 && n !== size) throw new Error(`shapes ${JSON.stringify(shapes)} do not broadcast`);
      if (n !== 1) size = n;
    }
    out.push(size);
  }
  return out;
}

// for each flat index of the broadcast shape `out`, the flat index into a tensor of shape `shape`
function broadcastIndex(shape, out) {
  const n = prod(out);
  const index = new Array(n);
  const offset = out.length - shape.length;
  for (let flat = 0; flat < n; flat++) {
    let rest = flat;
    let src = 0;
    let stride = 1;
    for (let d = out.length - 1; d >= 0; d--) {
      const coord = rest % out[d];
      rest = Math.floor(rest / out[d]);
      const sd = d - offset;
      if (sd >= 0) {
        if (shape[sd] !== 1) src += coord * stride;
        stride *= shape[sd];
      }
    }
    index[flat] = src;
  }
  return index;
}

function applyOp(name, inputs, attrs) {
  const spec = OPS[name];
  if (!spec) throw new Error(`unsupported op ${JSON.stringify(name)}`);
  if (inputs.length !== spec.arity) throw new Error(`${name} takes ${spec.arity} input(s), got ${inputs.length}`);
  const unknown = Object.keys(attrs).filter((k) => !(k in (spec.attrs || {})));
  if (unknown.length) throw new Error(`${name}: unknown attribute(s) ${unknown.join(', ')}`);
  const a = { ...(spec.attrs || {}), ...attrs };
  const shape = broadcastShapes(inputs.map((t) => t.shape));
  const maps = inputs.map((t) => broadcastIndex(t.shape, shape));
  const values = [];
  for (let i = 0; i < prod(shape); i++) {
    values.push(spec.fn(...inputs.map((t, j) => t.values[maps[j][i]]), a));
  }
  return { shape, values };
}

// --- numbers in the case format: finite doubles, or "inf", "-inf", "nan" -------------------------

function parseNumber(x) {
  if (typeof x === 'number') return x;
  if (x === 'inf') return Infinity;
  if (x === '-inf') return -Infinity;
  if (x === 'nan') return NaN;
  throw new Error(`not a number: ${JSON.stringify(x)}`);
}

// a JSON token: String(x) is the shortest decimal that reads back as the same double; -0 keeps its
// sign ("-0.0", since JSON.stringify(-0) is "0"), and non-finite numbers are strings
function numberToken(x) {
  if (Number.isNaN(x)) return '"nan"';
  if (x === Infinity) return '"inf"';
  if (x === -Infinity) return '"-inf"';
  if (Object.is(x, -0)) return '-0.0';
  return String(x);
}

function parseTensor(t, where) {
  if (!t || !Array.isArray(t.shape) || !Array.isArray(t.values)) throw new Error(`${where} is not a tensor`);
  if (prod(t.shape) !== t.values.length) throw new Error(`${where}: shape and number of values differ`);
  return { shape: t.shape, values: t.values.map(parseNumber) };
}

const tensorJSON = (shape, values) =>
  `{"shape":${JSON.stringify(shape)},"values":[${values.map(numberToken).join(',')}]}`;

// --- running a case -------------------------------------------------------------------------------

function runCase(c) {
  if (c.format !== 'backprop-conformance/graph-case' || c.version !== 1) {
    throw new Error(`not a version 1 graph case: format ${JSON.stringify(c.format)}, version ${c.version}`);
  }
  if (c.dtype !== 'float64') throw new Error(`dtype ${c.dtype} is not supported (float64 only)`);
  if (c.second_order != null) throw new Error('second order is not supported');
  const env = new Map();
  const leaves = [];
  for (const [name, t] of Object.entries(c.leaves)) {
    const { shape, values } = parseTensor(t, `leaf ${name}`);
    const tensor = { shape, values: values.map((x) => new Value(x)) };
    env.set(name, tensor);
    leaves.push([name, tensor]);
  }
  for (const node of c.nodes) {
    const inputs = node.inputs.map((i) => {
      if (!env.has(i)) throw new Error(`node ${node.name}: unknown input ${i}`);
      return env.get(i);
    });
    env.set(node.name, applyOp(node.op, inputs, node.attrs || {}));
  }
  const out = env.get(c.output);
  if (!out) throw new Error(`unknown output ${c.output}`);
  const ct = parseTensor(c.cotangent, 'cotangent');
  if (ct.values.length !== out.values.length) throw new Error('the cotangent does not have the output\'s shape');
  for (const [, t] of leaves) for (const v of t.values) v.grad = 0; // leaves the output does not reach
  backward(out.values, ct.values);
  const grads = leaves.map(([name, t]) => `${JSON.stringify(name)}:${tensorJSON(t.shape, t.values.map((v) => v.grad))}`);
  return `{"format":"backprop-conformance/graph-result","version":1,"error":null,` +
    `"value":${tensorJSON(out.shape, out.values.map((v) => v.data))},"grads":{${grads.join(',')}},"hvp":null}`;
}

function errorResult(message) {
  const line = String(message).split('\n').map((s) => s.trim()).filter(Boolean).join(' | ') || 'error';
  return JSON.stringify({
    format: 'backprop-conformance/graph-result', version: 1, error: line, value: null, grads: {}, hvp: null,
  });
}

// --- the protocol loop ------------------------------------------------------------------------------

function send(text) {
  process.stdout.write(text + '\n');
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
let greeted = false;

rl.on('line', (line) => {
  if (!line.trim()) return;
  let msg;
  try {
    msg = JSON.parse(line);
  } catch (e) {
    process.stderr.write(`engine.js: ignoring a line that is not JSON: ${e.message}\n`);
    return;
  }
  if (msg.type === 'hello') {
    if (msg.protocol !== PROTOCOL) process.stderr.write(`engine.js: harness speaks protocol ${msg.protocol}\n`);
    greeted = true;
    send(JSON.stringify({
      type: 'hello',
      protocol: PROTOCOL,
      name: NAME,
      version: VERSION,
      capabilities: { ops: Object.keys(OPS), dtypes: ['float64'], second_order: false },
    }));
  } else if (msg.type === 'case') {
    let result;
    try {
      if (!greeted) throw new Error('case before hello');
      result = runCase(msg.case);
    } catch (e) {
      result = errorResult(e && e.message ? e.message : e);
    }
    const id = msg.case && typeof msg.case.id === 'string' ? `"id":${JSON.stringify(msg.case.id)},` : '';
    send(`{"type":"result",${id}"result":${result}}`);
  } else if (msg.type === 'bye') {
    rl.close();
  } else {
    process.stderr.write(`engine.js: ignoring a message of type ${JSON.stringify(msg.type)}\n`);
  }
});

rl.on('close', () => {
  // stdout is flushed before exiting (pipes may be asynchronous on some platforms)
  process.stdout.write('', () => process.exit(0));
});
