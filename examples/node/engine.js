#!/usr/bin/env node
// A small scalar autograd engine (micrograd-style) that speaks the conformance suite's JSON Lines
// protocol (docs/protocol.md) on stdin/stdout. Node.js standard library only.
//
//   conformance verify --impl "cmd:node examples/node/engine.js"
//
// Every number is a JS double (binary64), so it declares dtypes ["float64"]. Leaves may be tensors:
// a tensor is an array of scalar Values (row-major) and the ops broadcast like torch; the
// gradient of every element is still computed by the scalar engine below — also for the two layer
// ops, conv2d and max_pool2d, composed from it (see "layer ops").
//
// It also speaks the protocol's network extension: training runs of MLPs (linear layers with or
// without bias; identity, relu, leaky_relu, sigmoid, tanh; mse, l1, bce_with_logits with every
// reduction; torch.optim.SGD with all its hyperparameters; gradients-only runs), with the backward
// written out by hand: see "training runs" below.
'use strict';

const readline = require('readline');

const PROTOCOL = 1;
const NAME = 'node-micrograd';
const VERSION = '0.2.0';

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

// --- layer ops: convolution and max pooling, composed from the scalar engine --------------------
//
// Each output element is built from the scalar Values above — a convolution's products and sums,
// the chosen input of a max pool — so the gradients come from the same chain rule, with `+=` where
// overlapping windows or shared weights meet. Geometry is torch's: zero padding for conv2d,
// implicit -inf padding for max_pool2d, dilation, groups, ceil_mode.

const pair = (v) => (Array.isArray(v) ? v : [v, v]);

// output length of a window op along one axis (torch's rule, ceil_mode's last-window check included)
function windows(size, k, s, p, d, ceil) {
  const span = size + 2 * p - d * (k - 1) - 1;
  if (span < 0) throw new Error(`a window of ${k} (dilation ${d}) does not fit ${size} + 2·${p}`);
  let out = Math.floor((span + (ceil ? s - 1 : 0)) / s) + 1;
  if (ceil && (out - 1) * s >= size + p) out -= 1;
  return out;
}

const at4 = (shape, a, b, c, d) => ((a * shape[1] + b) * shape[2] + c) * shape[3] + d;

const LAYER_OPS = {
  conv2d: {
    arity: [2, 3], // the bias is optional
    attrs: { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 },
    fn: ([x, w, b], a) => {
      const [N, C, H, W] = x.shape;
      const [O, Cg, KH, KW] = w.shape;
      const [s0, s1] = pair(a.stride); const [p0, p1] = pair(a.padding); const [d0, d1] = pair(a.dilation);
      const g = a.groups;
      if (C !== Cg * g || O % g !== 0) throw new Error(`conv2d: ${C} channels, weight ${w.shape}, groups ${g}`);
      const OH = windows(H, KH, s0, p0, d0, false); const OW = windows(W, KW, s1, p1, d1, false);
      const values = [];
      for (let n = 0; n < N; n++) {
        for (let o = 0; o < O; o++) {
          const group = Math.floor(o / (O / g));
          for (let oh = 0; oh < OH; oh++) {
            for (let ow = 0; ow < OW; ow++) {
              let acc = b ? b.values[o] : new Value(0);
              for (let c = 0; c < Cg; c++) {
                for (let kh = 0; kh < KH; kh++) {
                  const ih = oh * s0 - p0 + kh * d0; // the input row of tap kh
                  if (ih < 0 || ih >= H) continue; // zero padding contributes nothing
                  for (let kw = 0; kw < KW; kw++) {
                    const iw = ow * s1 - p1 + kw * d1;
                    if (iw < 0 || iw >= W) continue;
                    const term = OPS.mul.fn(x.values[at4(x.shape, n, group * Cg + c, ih, iw)],
                      w.values[at4(w.shape, o, c, kh, kw)]);
                    acc = OPS.add.fn(acc, term);
                  }
                }
              }
              values.push(acc);
            }
          }
        }
      }
      return { shape: [N, O, OH, OW], values };
    },
  },
  // torch's choice at ties: the first maximum in the window's row-major order (a later entry wins
  // only if it is larger, or NaN); the gradient goes to that one entry alone
  max_pool2d: {
    arity: [1],
    attrs: { kernel_size: [2, 2], stride: null, padding: [0, 0], dilation: [1, 1], ceil_mode: false },
    fn: ([x], a) => {
      const [N, C, H, W] = x.shape;
      const [k0, k1] = pair(a.kernel_size);
      const stride = a.stride == null || (Array.isArray(a.stride) && a.stride.length === 0) ? a.kernel_size : a.stride;
      const [s0, s1] = pair(stride); const [p0, p1] = pair(a.padding); const [d0, d1] = pair(a.dilation);
      const OH = windows(H, k0, s0, p0, d0, a.ceil_mode); const OW = windows(W, k1, s1, p1, d1, a.ceil_mode);
      const values = [];
      for (let n = 0; n < N; n++) {
        for (let c = 0; c < C; c++) {
          for (let oh = 0; oh < OH; oh++) {
            for (let ow = 0; ow < OW; ow++) {
              let best = null;
              for (let kh = 0; kh < k0; kh++) {
                const ih = oh * s0 - p0 + kh * d0;
                if (ih < 0 || ih >= H) continue; // -inf padding never wins
                for (let kw = 0; kw < k1; kw++) {
                  const iw = ow * s1 - p1 + kw * d1;
                  if (iw < 0 || iw >= W) continue;
                  const v = x.values[at4(x.shape, n, c, ih, iw)];
                  if (best === null || v.data > best.data || Number.isNaN(v.data)) best = v;
                }
              }
              values.push(new Value(best.data, [best], [1]));
            }
          }
        }
      }
      return { shape: [N, C, OH, OW], values };
    },
  },
};

function applyLayerOp(name, inputs, attrs) {
  const spec = LAYER_OPS[name];
  const unknown = Object.keys(attrs).filter((k) => !(k in spec.attrs));
  if (unknown.length) throw new Error(`${name}: unknown attribute(s) ${unknown.join(', ')}`);
  if (!spec.arity.includes(inputs.length)) throw new Error(`${name} takes ${spec.arity.join(' or ')} input(s), got ${inputs.length}`);
  if (inputs[0].shape.length !== 4) throw new Error(`${name}: input of shape ${JSON.stringify(inputs[0].shape)}, not [N, C, H, W]`);
  return spec.fn(inputs, { ...spec.attrs, ...attrs });
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
    const run = node.op in LAYER_OPS ? applyLayerOp : applyOp;
    env.set(node.name, run(node.op, inputs, node.attrs || {}));
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

// a case the engine cannot run is answered with an error result of the case's kind (one line)
function errorResult(message, kind) {
  const line = String(message).split('\n').map((s) => s.trim()).filter(Boolean).join(' | ') || 'error';
  if (kind === NETWORK_CASE) return JSON.stringify({ format: NETWORK_RESULT, version: 1, error: line, steps: [] });
  return JSON.stringify({
    format: 'backprop-conformance/graph-result', version: 1, error: line, value: null, grads: {}, hvp: null,
  });
}

// --- training runs: the protocol's network extension ----------------------------------------------
//
// A network case (docs/protocol.md, "Extension: training runs") is an MLP — layer i is
// torch.nn.Linear(in, out), z = a·Wᵀ + b with the weight W of shape (out, in), then an activation —
// a loss with its reduction, an optimizer with all its hyperparameters, and one batch (x, y) per
// step. Step t is what torch does: zero_grad, forward, loss, backward, optimizer step on batch t.
// The answer is, per step, the loss, the gradient of every parameter (after backward, before the
// step) and every parameter after the step, by name: layer0.weight, layer0.bias, layer1.weight, …
//
// No autograd here: the backward is written out (the δ-equations of an MLP) on plain arrays. A
// batch of vectors is an array of rows; a parameter is a flat row-major array, as in the case.

const NETWORK_CASE = 'backprop-conformance/network-case';
const NETWORK_RESULT = 'backprop-conformance/network-result';

// f(z) and the backward through it: the upstream gradient g given z and out = f(z), written as
// torch's kernels are (relu masks on its output: relu'(0) = 0 and NaN passes; leaky_relu'(0) =
// negative_slope, docs/conventions.md)
const ACTIVATIONS = {
  identity: { f: (z) => z, back: (g) => g },
  relu: { f: (z) => (z < 0 ? 0 : z), back: (g, z, out) => (out <= 0 ? 0 : g) },
  leaky_relu: {
    attrs: { negative_slope: 0.01 },
    f: (z, a) => (z > 0 ? z : z * a.negative_slope),
    back: (g, z, out, a) => (z > 0 ? g : g * a.negative_slope),
  },
  sigmoid: { f: (z) => 1 / (1 + Math.exp(-z)), back: (g, z, s) => g * (1 - s) * s },
  tanh: { f: Math.tanh, back: (g, z, t) => g * (1 - t * t) },
};

// -log σ(x), in torch's stable form: each sign of x has its own smooth formula
const negLogSigmoid = (x) => (x >= 0 ? Math.log1p(Math.exp(-x)) : -x + Math.log1p(Math.exp(x)));

// each loss per element: its value and its derivative with respect to the network's output o, for
// target y in output column j; a.weight, a.pos_weight are per output column (or null)
const LOSSES = {
  mse: { attrs: {}, value: (o, y) => (o - y) * (o - y), grad: (o, y) => 2 * (o - y) },
  l1: { attrs: {}, value: (o, y) => Math.abs(o - y), grad: (o, y) => Math.sign(o - y) }, // l1'(0) = sign(0) = 0
  bce_with_logits: {
    attrs: { weight: null, pos_weight: null },
    // (1 - y)·o + lw·(-log σ(o)), lw = 1 + (pos_weight - 1)·y; its derivative is lw·σ(o) - pos_weight·y
    value: (o, y, a, j) => {
      const lw = a.pos_weight ? 1 + (a.pos_weight[j] - 1) * y : 1;
      return (a.weight ? a.weight[j] : 1) * ((1 - y) * o + lw * negLogSigmoid(o));
    },
    grad: (o, y, a, j) => {
      const pw = a.pos_weight ? a.pos_weight[j] : 1;
      const lw = a.pos_weight ? 1 + (pw - 1) * y : 1;
      return (a.weight ? a.weight[j] : 1) * (lw / (1 + Math.exp(-o)) - pw * y);
    },
  },
};
const REDUCTIONS = ['mean', 'sum', 'none'];

// torch.optim.SGD (foreach=False), elementwise on every parameter θ with gradient ∇:
//   g ← -∇ if maximize, else ∇;   g ← g + λθ if weight_decay λ ≠ 0
//   with momentum μ ≠ 0: b ← g on the first step (a copy: no dampening), then b ← μb + (1 - τ)g;
//                        g ← g + μb if nesterov, else b
//   θ ← θ - γg
function sgdStep(params, grads, state, h) {
  for (const [name, p] of Object.entries(params)) {
    const grad = grads[name];
    const first = !(name in state);
    if (h.momentum !== 0 && first) state[name] = new Array(p.length);
    const buf = state[name];
    for (let k = 0; k < p.length; k++) {
      let g = h.maximize ? -grad[k] : grad[k];
      if (h.weight_decay !== 0) g += h.weight_decay * p[k];
      if (h.momentum !== 0) {
        buf[k] = first ? g : h.momentum * buf[k] + (1 - h.dampening) * g;
        g = h.nesterov ? g + h.momentum * buf[k] : buf[k];
      }
      p[k] -= h.lr * g;
    }
  }
}

// each optimizer: the hyperparameters a case gives it (all of torch's, by torch's names) and its
// step; "none" is a gradients-only run: one batch, the loss and the gradients, no step
const OPTIMIZERS = {
  sgd: { hyper: ['lr', 'momentum', 'dampening', 'weight_decay', 'nesterov', 'maximize'], step: sgdStep },
  none: { hyper: [], step: null },
};

// what the hello declares: exactly what the tables above implement, at the grain of grain.py —
// per loss its reductions and attributes, per optimizer its hyperparameters
const NETWORKS = {
  activations: Object.keys(ACTIVATIONS),
  output_activations: Object.keys(ACTIVATIONS),
  losses: Object.fromEntries(
    Object.entries(LOSSES).map(([name, loss]) => [name, [...REDUCTIONS, ...Object.keys(loss.attrs)]])),
  optimizers: Object.fromEntries(Object.entries(OPTIMIZERS).map(([name, opt]) => [name, opt.hyper])),
  bias: [true, false],
  layers: [1, 4], // any depth works; these are the sizes the suite draws by default
  batch_sizes: [1, 16],
};

// a tensor of shape [n, cols] as n rows
const rowsOf = (t, cols) =>
  Array.from({ length: t.values.length / cols }, (_, b) => t.values.slice(b * cols, (b + 1) * cols));

function need(ok, message) {
  if (!ok) throw new Error(message);
}

// the case as the engine computes with it; whatever it does not implement is an error result
function parseNetwork(c) {
  need(c.version === 1, `network case version ${c.version} is not supported`);
  need(c.dtype === 'float64', `dtype ${c.dtype} is not supported (float64 only)`);
  need(c.head === 'none', `head ${c.head} is not supported`);
  const layers = c.layers.map((la, i) => {
    const act = ACTIVATIONS[la.activation];
    need(act, `unsupported activation ${JSON.stringify(la.activation)}`);
    const weight = parseTensor(la.weight, `layer${i}.weight`);
    need(String(weight.shape) === String([la.out_features, la.in_features]), `layer${i}.weight: wrong shape`);
    const bias = la.bias == null ? null : parseTensor(la.bias, `layer${i}.bias`);
    need(!bias || String(bias.shape) === String([la.out_features]), `layer${i}.bias: wrong shape`);
    return {
      nIn: la.in_features, nOut: la.out_features, act, attrs: { ...act.attrs, ...la.attrs },
      weight: weight.values, bias: bias && bias.values,
    };
  });
  const loss = LOSSES[c.loss.name];
  need(loss, `unsupported loss ${JSON.stringify(c.loss.name)}`);
  need(REDUCTIONS.includes(c.loss.reduction), `unknown reduction ${JSON.stringify(c.loss.reduction)}`);
  const lossAttrs = { ...loss.attrs };
  for (const [k, v] of Object.entries(c.loss.attrs || {})) {
    need(k in lossAttrs, `${c.loss.name}: unsupported attribute ${k}`);
    lossAttrs[k] = v == null ? null : parseTensor(v, `loss attribute ${k}`).values;
  }
  const opt = OPTIMIZERS[c.optimizer.name];
  need(opt, `unsupported optimizer ${JSON.stringify(c.optimizer.name)}`);
  const given = Object.keys(c.optimizer.hyper);
  need(String(given.sort()) === String([...opt.hyper].sort()), `${c.optimizer.name} takes ${opt.hyper}, got ${given}`);
  const hyper = {}; // numbers (maybe "inf", …) and booleans (nesterov, maximize)
  for (const [k, v] of Object.entries(c.optimizer.hyper)) hyper[k] = typeof v === 'boolean' ? v : parseNumber(v);
  need(!hyper.nesterov || (hyper.momentum > 0 && hyper.dampening === 0), 'nesterov needs momentum and no dampening');
  need(opt.step || c.batches.length === 1, `a gradients-only run has one batch, not ${c.batches.length}`);
  const nIn = layers[0].nIn;
  const nOut = layers[layers.length - 1].nOut;
  const batches = c.batches.map((b, t) => ({
    x: rowsOf(parseTensor(b.x, `batch ${t + 1} x`), nIn),
    y: rowsOf(parseTensor(b.y, `batch ${t + 1} y`), nOut),
  }));
  return { layers, loss, reduction: c.loss.reduction, lossAttrs, opt, hyper, batches };
}

// forward: per layer its input a, pre-activation z = a·Wᵀ + b and output h = f(z) (kept for backward)
function networkForward(layers, x) {
  const cache = [];
  let a = x;
  for (const la of layers) {
    const z = a.map((row) => {
      const out = new Array(la.nOut);
      for (let o = 0; o < la.nOut; o++) {
        let s = 0;
        for (let i = 0; i < la.nIn; i++) s += row[i] * la.weight[o * la.nIn + i];
        out[o] = la.bias ? s + la.bias[o] : s;
      }
      return out;
    });
    const h = z.map((row) => row.map((v) => la.act.f(v, la.attrs)));
    cache.push({ a, z, h });
    a = h;
  }
  return cache;
}

// the loss of output `out` against targets `y` and ∂loss/∂out; 'none' keeps every element's loss and
// backpropagates ones (the gradient of their sum), 'mean' divides by the number of elements
function lossAndGradient(net, out, y) {
  const { loss, reduction, lossAttrs } = net;
  const scale = reduction === 'mean' ? 1 / (out.length * out[0].length) : 1;
  const values = [];
  const dOut = out.map((row, b) => row.map((o, j) => {
    values.push(loss.value(o, y[b][j], lossAttrs, j));
    return loss.grad(o, y[b][j], lossAttrs, j) * scale;
  }));
  if (reduction === 'none') return { shape: [out.length, out[0].length], values, dOut };
  const sum = values.reduce((s, v) => s + v, 0);
  return { shape: [], values: [reduction === 'mean' ? sum / values.length : sum], dOut };
}

// backward, last layer first: δ = ∂L/∂z = ∂L/∂h ⊙ f'(z); ∂L/∂W[o][i] = Σ_b δ[b][o]·a[b][i];
// ∂L/∂bias[o] = Σ_b δ[b][o]; ∂L/∂a[b][i] = Σ_o δ[b][o]·W[o][i], the ∂L/∂h of the layer before
function networkBackward(layers, cache, dOut) {
  const grads = {};
  let dh = dOut;
  for (let l = layers.length - 1; l >= 0; l--) {
    const la = layers[l];
    const { a, z, h } = cache[l];
    const delta = dh.map((row, b) => row.map((g, o) => la.act.back(g, z[b][o], h[b][o], la.attrs)));
    const dW = new Array(la.nOut * la.nIn).fill(0);
    const dB = new Array(la.nOut).fill(0);
    for (let b = 0; b < delta.length; b++) {
      for (let o = 0; o < la.nOut; o++) {
        for (let i = 0; i < la.nIn; i++) dW[o * la.nIn + i] += delta[b][o] * a[b][i];
        dB[o] += delta[b][o];
      }
    }
    grads[`layer${l}.weight`] = dW;
    if (la.bias) grads[`layer${l}.bias`] = dB;
    if (l > 0) {
      dh = delta.map((row) => {
        const da = new Array(la.nIn).fill(0);
        for (let o = 0; o < la.nOut; o++) {
          for (let i = 0; i < la.nIn; i++) da[i] += row[o] * la.weight[o * la.nIn + i];
        }
        return da;
      });
    }
  }
  return grads;
}

// the training run: per batch forward, loss, backward, then the optimizer's step; one result step each
function runNetworkCase(c) {
  const net = parseNetwork(c);
  const { layers } = net;
  const params = {}; // by name, the very arrays the layers compute with: the optimizer updates them in place
  const shapes = {};
  layers.forEach((la, i) => {
    params[`layer${i}.weight`] = la.weight;
    shapes[`layer${i}.weight`] = [la.nOut, la.nIn];
    if (la.bias) {
      params[`layer${i}.bias`] = la.bias;
      shapes[`layer${i}.bias`] = [la.nOut];
    }
  });
  const state = {}; // the optimizer's, across steps (SGD: the momentum buffers)
  const table = (arrays) =>
    Object.keys(arrays).map((k) => `${JSON.stringify(k)}:${tensorJSON(shapes[k], arrays[k])}`).join(',');
  const steps = net.batches.map(({ x, y }) => {
    const cache = networkForward(layers, x);
    const loss = lossAndGradient(net, cache[cache.length - 1].h, y);
    const grads = networkBackward(layers, cache, loss.dOut);
    const gradsJSON = table(grads);
    if (net.opt.step) net.opt.step(params, grads, state, net.hyper);
    const paramsJSON = net.opt.step ? table(params) : ''; // no step: no parameters to report
    return `{"loss":${tensorJSON(loss.shape, loss.values)},"grads":{${gradsJSON}},"params":{${paramsJSON}}}`;
  });
  return `{"format":"${NETWORK_RESULT}","version":1,"error":null,"steps":[${steps.join(',')}]}`;
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
      capabilities: { ops: [...Object.keys(OPS), ...Object.keys(LAYER_OPS)], dtypes: ['float64'], second_order: false, networks: NETWORKS },
    }));
  } else if (msg.type === 'case') {
    let result;
    try {
      if (!greeted) throw new Error('case before hello');
      result = msg.case && msg.case.format === NETWORK_CASE ? runNetworkCase(msg.case) : runCase(msg.case);
    } catch (e) {
      result = errorResult(e && e.message ? e.message : e, msg.case && msg.case.format);
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
