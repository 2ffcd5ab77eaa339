// The signaling socket: one WebSocket to /ws at a time, JSON text frames, keepalive, and a
// queue that holds call messages while a dropped socket is being resumed.

import { traceparent } from './trace.js';

// Keepalive: proxies and phone networks drop idle connections after 30-60 s; a ping every
// 15 s keeps the socket warm, and no answer within 10 s means it is dead even if the OS has
// not noticed (a phone that changed networks).
const PING_EVERY_MS = 15000;
const PONG_WITHIN_MS = 10000;
// Messages held while resuming; a call set-up is ~30 messages, so this never drops real ones.
const MAX_QUEUED = 200;
// Messages that start a user action get a traceparent, so each action is one trace from the
// browser through every service (docs/observability.md).
const TRACED = new Set(['join-pin', 'resume', 'leave']);
// Control messages go out at once; call messages wait until the session is confirmed.
const CONTROL = new Set(['join-pin', 'resume', 'leave', 'ping']);

export function socketURL(location) {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

export function createSignaling({ url, dispatch, log, random = (n) => crypto.getRandomValues(new Uint8Array(n)), WebSocketImpl = globalThis.WebSocket }) {
  const OPEN = 1; // WebSocket.OPEN
  let ws = null;
  let flowing = false; // false after a drop until the reducer says the session is back
  let queue = [];
  let pingTimer = null;
  let pongTimer = null;

  const stopKeepalive = () => {
    clearInterval(pingTimer);
    clearTimeout(pongTimer);
    pingTimer = pongTimer = null;
  };

  function raw(sock, msg) {
    if (TRACED.has(msg.type)) {
      msg = { ...msg, traceparent: traceparent(random(24)) };
      log.debug('trace', msg.type, msg.traceparent);
    }
    sock.send(JSON.stringify(msg));
  }

  function dropped(sock, code, reason) {
    if (ws !== sock) return; // an old socket we already replaced or closed
    ws = null;
    flowing = false;
    stopKeepalive();
    dispatch({ type: 'SOCKET_CLOSED', code, reason });
  }

  // abandon stops listening to a socket we believe dead, without a close frame: the server
  // takes a close frame from the client as a goodbye and would give up our slot, while a
  // silent end keeps it for the resume. If the socket was alive after all, the server closes
  // it when our resume takes the slot over.
  function abandon(sock, reason) {
    sock.onopen = sock.onmessage = sock.onclose = null;
    dropped(sock, 1006, reason);
  }

  function open() {
    if (ws) {
      const old = ws;
      ws = null;
      old.close(1000);
    }
    stopKeepalive();
    flowing = false;
    let sock;
    try {
      sock = new WebSocketImpl(url);
    } catch (err) {
      log.warn('websocket', err);
      queueMicrotask(() => dispatch({ type: 'SOCKET_CLOSED', code: 1006, reason: String(err) }));
      return;
    }
    ws = sock;
    sock.onopen = () => {
      if (ws !== sock) return;
      pingTimer = setInterval(() => {
        if (ws !== sock || sock.readyState !== OPEN) return;
        raw(sock, { type: 'ping' });
        clearTimeout(pongTimer);
        pongTimer = setTimeout(() => {
          log.warn('no pong: treating the socket as dead');
          abandon(sock, 'keepalive timeout');
        }, PONG_WITHIN_MS);
      }, PING_EVERY_MS);
      dispatch({ type: 'SOCKET_OPEN' });
    };
    sock.onmessage = (ev) => {
      if (ws !== sock) return;
      clearTimeout(pongTimer); // any frame proves the socket is alive
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        log.warn('server sent a frame that is not JSON; ignored');
        return;
      }
      if (!msg || typeof msg.type !== 'string') {
        log.warn('server sent a message without a type; ignored');
        return;
      }
      if (msg.type === 'pong') return;
      dispatch({ type: 'SOCKET_MESSAGE', msg });
    };
    sock.onclose = (ev) => dropped(sock, ev.code, ev.reason);
  }

  function send(msg) {
    const ready = ws && ws.readyState === OPEN;
    if (ready && CONTROL.has(msg.type)) {
      raw(ws, msg);
      if (msg.type === 'join-pin') flowing = true;
      return;
    }
    if (ready && flowing) {
      raw(ws, msg);
      return;
    }
    if (CONTROL.has(msg.type)) return; // a leave or ping on a dead socket means nothing
    if (queue.length >= MAX_QUEUED) queue.shift();
    queue.push(msg);
  }

  // flush sends what was held during a resume, in order.
  function flush() {
    flowing = true;
    const held = queue;
    queue = [];
    for (const msg of held) send(msg);
  }

  function close() {
    stopKeepalive();
    queue = [];
    flowing = false;
    if (!ws) return;
    const old = ws;
    ws = null;
    old.close(1000, 'bye');
  }

  // drop is for tests and debugging: the page gives up its socket as it does when the
  // keepalive goes unanswered.
  function drop() {
    if (ws) abandon(ws, 'dropped');
  }

  return { open, send, flush, close, drop };
}
