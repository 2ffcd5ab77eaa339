// The effect plumbing that has logic of its own: named timers and the signaling socket's
// queue, keepalive and stale-socket handling (with a scripted WebSocket, since Node 20 has no
// WebSocket client; the real one is exercised by the browser tests in e2e/).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createTimers, runEffect } from '../static/js/effects.js';
import { createSignaling, socketURL } from '../static/js/signaling.js';

// A clock whose timers fire only when told.
function manualClock() {
  let next = 1;
  const pending = new Map();
  return {
    setTimeout: (fn, ms) => { const id = next++; pending.set(id, { fn, ms }); return id; },
    clearTimeout: (id) => pending.delete(id),
    fire(id) { const t = pending.get(id); pending.delete(id); t.fn(); },
    pending,
  };
}

describe('timers', () => {
  test('start, restart, cancel and cancelAll by name', () => {
    const clock = manualClock();
    const fired = [];
    const t = createTimers((a) => fired.push(a), clock);
    t.start('a', 100);
    t.start('b', 200);
    t.start('a', 300); // restarting replaces the first
    assert.deepEqual(t.active().sort(), ['a', 'b']);
    assert.equal(clock.pending.size, 2);
    const [idA] = [...clock.pending.entries()].find(([, v]) => v.ms === 300);
    clock.fire(idA);
    assert.deepEqual(fired, [{ type: 'TIMER', name: 'a' }]);
    assert.deepEqual(t.active(), ['b']);
    t.cancel('b');
    assert.equal(clock.pending.size, 0);
    t.start('c', 1);
    t.start('d', 1);
    t.cancelAll();
    assert.equal(clock.pending.size, 0);
    assert.deepEqual(t.active(), []);
  });
});

describe('runEffect', () => {
  test('routes each effect to its module', () => {
    const calls = [];
    const rec = (name) => new Proxy({}, { get: (_, k) => (...args) => calls.push(`${name}.${String(k)}`) });
    const deps = { media: rec('media'), signaling: rec('signaling'), peer: rec('peer'), stats: rec('stats'), timers: rec('timers'), log: { warn: (...a) => calls.push(`warn ${a.join(' ')}`) } };
    for (const type of ['media.acquire', 'socket.open', 'socket.send', 'pc.restartIce', 'pc.candidate', 'stats.start', 'timer.cancelAll', 'bogus']) {
      runEffect({ type }, deps);
    }
    assert.deepEqual(calls, ['media.acquire', 'signaling.open', 'signaling.send', 'peer.restartIce', 'peer.candidate', 'stats.start', 'timers.cancelAll', 'warn unknown effect bogus']);
  });
});

// FakeSocket records what the client does; the test plays the server.
class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closed = null;
    FakeSocket.all.push(this);
  }
  send(data) { this.sent.push(JSON.parse(data)); }
  close(code, reason) { this.closed = { code, reason }; this.readyState = 3; }
  serverOpen() { this.readyState = 1; this.onopen?.(); }
  serverSend(obj) { this.onmessage?.({ data: typeof obj === 'string' ? obj : JSON.stringify(obj) }); }
  serverClose(code) { this.readyState = 3; this.onclose?.({ code, reason: '' }); }
}

function setup() {
  FakeSocket.all = [];
  const actions = [];
  const warnings = [];
  const sig = createSignaling({
    url: 'ws://h/ws',
    dispatch: (a) => actions.push(a),
    log: { debug() {}, warn: (...a) => warnings.push(a.join(' ')) },
    random: (n) => new Uint8Array(n).fill(7),
    WebSocketImpl: FakeSocket,
  });
  return { sig, actions, warnings };
}

describe('signaling socket', () => {
  test('URL follows the page scheme', () => {
    assert.equal(socketURL({ protocol: 'https:', host: 'call.example:8443' }), 'wss://call.example:8443/ws');
    assert.equal(socketURL({ protocol: 'http:', host: '127.0.0.1:8080' }), 'ws://127.0.0.1:8080/ws');
  });

  test('join, traceparent on user actions, messages in order', () => {
    const { sig, actions } = setup();
    sig.open();
    const ws = FakeSocket.all[0];
    ws.serverOpen();
    assert.deepEqual(actions, [{ type: 'SOCKET_OPEN' }]);
    sig.send({ type: 'join-pin', pin: '123456' });
    sig.send({ type: 'offer', data: { type: 'offer', sdp: 'x' } });
    assert.equal(ws.sent[0].type, 'join-pin');
    assert.match(ws.sent[0].traceparent, /^00-0707[0-9a-f]{28}-[0-9a-f]{16}-01$/);
    assert.deepEqual(ws.sent[1], { type: 'offer', data: { type: 'offer', sdp: 'x' } }, 'relayed messages carry no traceparent');
    ws.serverSend({ type: 'peer-joined' });
    assert.deepEqual(actions.at(-1), { type: 'SOCKET_MESSAGE', msg: { type: 'peer-joined' } });
  });

  test('frames that are not JSON or have no type are logged, not dispatched; pong is absorbed', () => {
    const { sig, actions, warnings } = setup();
    sig.open();
    const ws = FakeSocket.all[0];
    ws.serverOpen();
    ws.serverSend('not json');
    ws.serverSend({ nope: 1 });
    ws.serverSend({ type: 'pong' });
    assert.deepEqual(actions, [{ type: 'SOCKET_OPEN' }]);
    assert.equal(warnings.length, 2);
  });

  test('after a drop, call messages wait for the resume and then go out in order', () => {
    const { sig, actions } = setup();
    sig.open();
    const first = FakeSocket.all[0];
    first.serverOpen();
    sig.send({ type: 'join-pin', pin: '123456' });
    first.serverClose(1006);
    assert.deepEqual(actions.at(-1), { type: 'SOCKET_CLOSED', code: 1006, reason: '' });
    sig.send({ type: 'ice-candidate', data: { candidate: 'a' } });
    sig.send({ type: 'ice-candidate', data: { candidate: 'b' } });
    sig.send({ type: 'leave' }); // meaningless on a dead socket: dropped
    sig.open();
    const second = FakeSocket.all[1];
    second.serverOpen();
    sig.send({ type: 'resume', token: 't' });
    sig.send({ type: 'ice-candidate', data: { candidate: 'c' } });
    assert.deepEqual(second.sent.map((m) => m.type), ['resume'], 'nothing but the resume before it is confirmed');
    sig.flush();
    assert.deepEqual(second.sent.map((m) => m.data?.candidate ?? m.type), ['resume', 'a', 'b', 'c']);
  });

  test('events of a replaced socket are ignored', () => {
    const { sig, actions } = setup();
    sig.open();
    const old = FakeSocket.all[0];
    sig.open();
    assert.equal(old.closed.code, 1000);
    old.serverSend({ type: 'peer-left' });
    old.serverClose(1006);
    assert.deepEqual(actions, []);
  });

  test('close drops the queue and reports nothing', () => {
    const { sig, actions } = setup();
    sig.open();
    const ws = FakeSocket.all[0];
    ws.serverOpen();
    sig.send({ type: 'leave' });
    sig.close();
    assert.deepEqual(ws.sent.map((m) => m.type), ['leave']);
    assert.equal(ws.closed.code, 1000);
    ws.serverClose(1000);
    assert.deepEqual(actions, [{ type: 'SOCKET_OPEN' }]);
  });

  test('drop reports a network failure and sends no close frame (that would be a goodbye)', () => {
    const { sig, actions } = setup();
    sig.open();
    const ws = FakeSocket.all[0];
    ws.serverOpen();
    sig.drop();
    assert.deepEqual(actions.at(-1), { type: 'SOCKET_CLOSED', code: 1006, reason: 'dropped' });
    assert.equal(ws.closed, null);
    ws.serverSend({ type: 'peer-left' }); // the abandoned socket is not listened to
    ws.serverClose(1000);
    assert.equal(actions.length, 2);
  });

  test('an unanswered ping abandons the socket without a close frame', async () => {
    const { sig, actions } = setup();
    const realSetInterval = globalThis.setInterval;
    const realSetTimeout = globalThis.setTimeout;
    const fns = [];
    globalThis.setInterval = (fn) => { fns.push(fn); return 1; };
    globalThis.setTimeout = (fn) => { fns.push(fn); return 2; };
    try {
      sig.open();
      const ws = FakeSocket.all[0];
      ws.serverOpen();
      fns.shift()(); // the ping interval
      assert.deepEqual(ws.sent.map((m) => m.type), ['ping']);
      fns.shift()(); // the pong deadline
      assert.deepEqual(actions.at(-1), { type: 'SOCKET_CLOSED', code: 1006, reason: 'keepalive timeout' });
      assert.equal(ws.closed, null);
    } finally {
      globalThis.setInterval = realSetInterval;
      globalThis.setTimeout = realSetTimeout;
    }
  });

  test('the queue is bounded', () => {
    const { sig } = setup();
    for (let i = 0; i < 250; i++) sig.send({ type: 'ice-candidate', data: { i } });
    sig.open();
    const ws = FakeSocket.all[0];
    ws.serverOpen();
    sig.flush();
    assert.equal(ws.sent.length, 200);
    assert.equal(ws.sent[0].data.i, 50, 'the oldest are dropped first');
  });
});
