// The effect plumbing that has logic of its own: named timers and the signaling socket's
// queue, keepalive and stale-socket handling (with a scripted WebSocket, since Node 20 has no
// WebSocket client; the real one is exercised by the browser tests in e2e/).
import { test, describe, beforeEach, afterEach } from 'node:test';
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

// Every signaling module a test opens, closed after it so that no real keepalive timer holds the
// test process open.
const opened = [];
afterEach(() => { for (const sig of opened.splice(0)) sig.close(); });

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
  opened.push(sig);
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

  test('a join or leave that brings the call\'s traceparent keeps it', () => {
    const { sig } = setup();
    sig.open();
    const ws = FakeSocket.all[0];
    ws.serverOpen();
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    sig.send({ type: 'join-pin', pin: '123456', traceparent: tp });
    sig.send({ type: 'leave', traceparent: tp });
    assert.equal(ws.sent[0].traceparent, tp);
    assert.equal(ws.sent[1].traceparent, tp);
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

// fakeTimers replaces the global timers for one test: nothing fires unless told, so the
// renewal's deadlines (and the keepalive) are driven by the test.
function fakeTimers() {
  const real = { setTimeout, clearTimeout, setInterval, clearInterval };
  let next = 1;
  const pending = new Map();
  globalThis.setTimeout = (fn, ms) => { const id = next++; pending.set(id, { fn, ms, repeat: false }); return id; };
  globalThis.setInterval = (fn, ms) => { const id = next++; pending.set(id, { fn, ms, repeat: true }); return id; };
  globalThis.clearTimeout = globalThis.clearInterval = (id) => pending.delete(id);
  return {
    // fire runs the pending timers set for ms (once each); it reports how many ran.
    fire(ms) {
      let n = 0;
      for (const [id, t] of [...pending]) {
        if (t.ms !== ms || !pending.has(id)) continue;
        if (!t.repeat) pending.delete(id);
        t.fn();
        n++;
      }
      return n;
    },
    restore() { Object.assign(globalThis, real); },
  };
}

// joinedSocket opens the session's socket and joins, as the reducer does.
function joinedSocket() {
  const env = setup();
  env.sig.open();
  const a = FakeSocket.all[0];
  a.serverOpen();
  env.sig.send({ type: 'join-pin', pin: '123456' });
  return { ...env, a };
}

const kinds = (actions) => actions.map((x) => (x.type === 'SOCKET_MESSAGE' ? `${x.msg.type}${x.msg.n ? ` ${x.msg.n}` : ''}` : x.type));

describe('renewing the session on a second socket', () => {
  let clock;
  beforeEach(() => { clock = fakeTimers(); });
  afterEach(() => clock.restore());

  test('the second socket resumes while the first keeps delivering; it takes over once the first is closed', () => {
    const { sig, actions, a } = joinedSocket();
    actions.length = 0;
    sig.refresh('tok-1');
    assert.equal(FakeSocket.all.length, 2);
    const b = FakeSocket.all[1];
    b.serverOpen();
    assert.deepEqual(b.sent.map((m) => [m.type, m.token]), [['resume', 'tok-1']]);
    assert.match(b.sent[0].traceparent, /^00-/);
    sig.send({ type: 'answer', data: { type: 'answer', sdp: 'x' } });
    assert.deepEqual(a.sent.map((m) => m.type), ['join-pin'], 'call messages wait: on the first socket they could be lost in the hand-over');
    a.serverSend({ type: 'ice-candidate', n: 1 });
    b.serverSend({ type: 'resumed', data: { resumeToken: 'tok-2' } });
    b.serverSend({ type: 'ice-candidate', n: 3 });
    a.serverSend({ type: 'ice-candidate', n: 2 });
    a.serverSend({ type: 'error', code: 'SERVICE_UNAVAILABLE', error: 'Lost the connection to the room service' });
    assert.deepEqual(kinds(actions), ['ice-candidate 1', 'ice-candidate 2'], 'the first socket is heard out first');
    a.serverClose(1012);
    assert.deepEqual(kinds(actions), ['ice-candidate 1', 'ice-candidate 2', 'resumed', 'ice-candidate 3'], 'its error and close are the hand-over, not a drop');
    assert.equal(a.closed, null, 'no close frame on the first socket: that would be a goodbye');
    sig.flush();
    assert.deepEqual(b.sent.map((m) => m.type), ['resume', 'answer'], 'what waited goes out on the new socket');
    a.serverSend({ type: 'peer-left' });
    b.serverSend({ type: 'peer-left' });
    assert.deepEqual(kinds(actions).slice(4), ['peer-left']);
    assert.equal(clock.fire(15000), 1, 'the keepalive runs on the new socket');
    assert.deepEqual(b.sent.at(-1), { type: 'ping' });
    assert.deepEqual(a.sent.map((m) => m.type), ['join-pin']);
    b.serverClose(1006);
    assert.deepEqual(actions.at(-1), { type: 'SOCKET_CLOSED', code: 1006, reason: '' }, 'the new socket is the session from now on');
  });

  test('the first socket closes before the second answers: the answer completes the hand-over at once', () => {
    const { sig, actions, a } = joinedSocket();
    actions.length = 0;
    sig.refresh('tok-1');
    const b = FakeSocket.all[1];
    b.serverOpen();
    a.serverSend({ type: 'error', code: 'SERVICE_UNAVAILABLE', error: 'x' });
    a.serverClose(1012);
    assert.deepEqual(actions, []);
    b.serverSend({ type: 'resumed', data: {} });
    assert.deepEqual(kinds(actions), ['resumed']);
  });

  test('a first socket that never closes is let go after a moment', () => {
    const { sig, actions, a } = joinedSocket();
    actions.length = 0;
    sig.refresh('tok-1');
    const b = FakeSocket.all[1];
    b.serverOpen();
    b.serverSend({ type: 'resumed', data: {} });
    assert.deepEqual(actions, []);
    assert.equal(clock.fire(1000), 1);
    assert.deepEqual(kinds(actions), ['resumed']);
    a.serverSend({ type: 'peer-left' });
    a.serverClose(1012);
    assert.equal(actions.length, 1, 'nothing more from the first socket');
    assert.equal(a.closed, null);
  });

  test('a refused renewal: REFRESH_FAILED, the first socket goes on, the second gets no close frame', () => {
    const { sig, actions, a } = joinedSocket();
    actions.length = 0;
    sig.refresh('tok-1');
    const b = FakeSocket.all[1];
    b.serverOpen();
    sig.send({ type: 'offer', data: { type: 'offer', sdp: 'o' } });
    b.serverSend({ type: 'error', code: 'JOIN_RATE_LIMITED', error: 'Too many joins', retryAfterMs: 4000 });
    assert.deepEqual(actions, [{ type: 'REFRESH_FAILED', reason: 'JOIN_RATE_LIMITED' }]);
    assert.equal(b.closed, null);
    b.serverClose(1013);
    assert.equal(actions.length, 1);
    sig.flush();
    assert.deepEqual(a.sent.map((m) => m.type), ['join-pin', 'offer']);
    a.serverSend({ type: 'answer', data: {} });
    assert.deepEqual(kinds(actions).at(-1), 'answer');
    sig.refresh('tok-1');
    assert.equal(FakeSocket.all.length, 3, 'another renewal can start');
  });

  test('no answer in time: REFRESH_FAILED and a late answer is ignored', () => {
    const { sig, actions } = joinedSocket();
    actions.length = 0;
    sig.refresh('tok-1');
    const b = FakeSocket.all[1];
    assert.equal(clock.fire(4000), 1);
    assert.deepEqual(actions, [{ type: 'REFRESH_FAILED', reason: 'timeout' }]);
    b.serverOpen();
    assert.deepEqual(b.sent, [], 'a socket given up on sends nothing');
    b.serverSend({ type: 'resumed', data: {} });
    assert.equal(actions.length, 1);
  });

  test('both sockets lost: an ordinary drop, with the first socket\'s error before it', () => {
    const { sig, actions, a } = joinedSocket();
    actions.length = 0;
    sig.refresh('tok-1');
    const b = FakeSocket.all[1];
    a.serverSend({ type: 'error', code: 'SOMETHING', error: 'x' });
    a.serverClose(1011);
    b.serverClose(1006);
    assert.deepEqual(kinds(actions), ['error', 'SOCKET_CLOSED']);
    assert.equal(actions.at(-1).code, 1011);
    sig.open();
    assert.equal(FakeSocket.all.length, 3, 'the usual resume follows');
  });

  test('an unanswered ping on the first socket during the renewal waits for its outcome', () => {
    const { sig, actions, a } = joinedSocket();
    actions.length = 0;
    sig.refresh('tok-1');
    const b = FakeSocket.all[1];
    clock.fire(15000);
    clock.fire(10000);
    assert.deepEqual(actions, []);
    assert.equal(a.closed, null);
    b.serverOpen();
    b.serverSend({ type: 'resumed', data: {} });
    assert.deepEqual(kinds(actions), ['resumed']);
  });

  test('without an open socket or token there is nothing to renew', async () => {
    const { sig, actions } = setup();
    sig.refresh('tok-1');
    await Promise.resolve();
    assert.deepEqual(actions, [{ type: 'REFRESH_FAILED', reason: 'no open socket' }]);
    assert.equal(FakeSocket.all.length, 0);
  });

  test('one renewal at a time', () => {
    const { sig } = joinedSocket();
    sig.refresh('tok-1');
    sig.refresh('tok-1');
    assert.equal(FakeSocket.all.length, 2);
  });

  test('hanging up during a renewal says goodbye on both sockets and reports nothing', () => {
    const { sig, actions, a } = joinedSocket();
    actions.length = 0;
    sig.refresh('tok-1');
    const b = FakeSocket.all[1];
    b.serverOpen();
    sig.send({ type: 'leave' });
    sig.close();
    assert.deepEqual(a.sent.map((m) => m.type), ['join-pin', 'leave']);
    assert.equal(a.closed.code, 1000);
    assert.equal(b.closed.code, 1000);
    b.serverSend({ type: 'resumed', data: {} });
    a.serverClose(1000);
    b.serverClose(1000);
    assert.equal(clock.fire(4000), 0, 'its deadline is gone');
    assert.deepEqual(actions, []);
  });
});

describe('runEffect: renewal', () => {
  test('socket.refresh hands the token to the signaling module', () => {
    const got = [];
    runEffect({ type: 'socket.refresh', token: 'tok-9' }, { signaling: { refresh: (t) => got.push(t) } });
    assert.deepEqual(got, ['tok-9']);
  });
});
