// The signaling socket: one WebSocket to /ws carries the session, JSON text frames, keepalive,
// and a queue that holds call messages while a dropped socket is being resumed. refresh()
// renews the session's TURN credentials with a resume on a second socket while the first
// stays open (make before break), since the resume answer is the only message that carries
// new ones.

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
// A renewal's resume gets this long (a resume is one round trip plus a credential issue);
// past it the call goes on with the credentials on hand.
const REFRESH_WITHIN_MS = 4000;
// Once the second socket has the session, the server closes the first after writing what was
// already queued for it; the second socket's frames wait for that (or this long), so the other
// member's messages are handled in the order they were sent.
const RETIRE_WITHIN_MS = 1000;

export function socketURL(location) {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

export function createSignaling({ url, dispatch, log, random = (n) => crypto.getRandomValues(new Uint8Array(n)), WebSocketImpl = globalThis.WebSocket }) {
  const OPEN = 1; // WebSocket.OPEN
  let ws = null; // the socket that carries the session
  let flowing = false; // false after a drop (or during a renewal) until the reducer says the session is back
  let queue = [];
  let pingTimer = null;
  let pongTimer = null;
  // A renewal under way: {sock, old, confirmed, held, oldErrors, oldClosed, newClosed, timer}.
  let renewal = null;

  const stopKeepalive = () => {
    clearInterval(pingTimer);
    clearTimeout(pongTimer);
    pingTimer = pongTimer = null;
  };
  const forget = (sock) => {
    sock.onopen = sock.onmessage = sock.onclose = null;
  };

  function raw(sock, msg) {
    // A join or leave of a call comes with the call's own traceparent (state.js), so its
    // support code finds both; the rest get a trace of their own.
    if (TRACED.has(msg.type)) {
      if (!msg.traceparent) msg = { ...msg, traceparent: traceparent(random(24)) };
      log.debug('trace', msg.type, msg.traceparent);
    }
    sock.send(JSON.stringify(msg));
  }

  // parse reads a frame; frames that are not JSON objects with a type are logged and skipped.
  function parse(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      log.warn('server sent a frame that is not JSON; ignored');
      return null;
    }
    if (!msg || typeof msg.type !== 'string') {
      log.warn('server sent a message without a type; ignored');
      return null;
    }
    return msg;
  }

  function startKeepalive(sock) {
    stopKeepalive();
    pingTimer = setInterval(() => {
      if (ws !== sock || sock.readyState !== OPEN) return;
      raw(sock, { type: 'ping' });
      clearTimeout(pongTimer);
      pongTimer = setTimeout(() => {
        log.warn('no pong: treating the socket as dead');
        abandon(sock, 'keepalive timeout');
      }, PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  function dropped(sock, code, reason) {
    if (ws !== sock) return; // an old socket we already replaced or closed
    if (renewal && renewal.old === sock) {
      // It may be the server handing the session over to the renewal's socket: what that
      // socket answers decides whether this was a drop.
      forget(sock);
      stopKeepalive();
      renewal.oldClosed = { code, reason };
      if (renewal.confirmed) promote(renewal);
      return;
    }
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
    forget(sock);
    dropped(sock, 1006, reason);
  }

  // listen makes sock the session's socket: its frames are dispatched, its end reported.
  function listen(sock) {
    sock.onmessage = (ev) => {
      if (ws !== sock) return;
      clearTimeout(pongTimer); // any frame proves the socket is alive
      const msg = parse(ev.data);
      if (!msg || msg.type === 'pong') return;
      if (msg.type === 'error' && renewal && renewal.old === sock) {
        // Most likely the server telling this socket that the renewal took the session over;
        // reported only if the renewal fails.
        renewal.oldErrors.push(msg);
        return;
      }
      dispatch({ type: 'SOCKET_MESSAGE', msg });
    };
    sock.onclose = (ev) => dropped(sock, ev.code, ev.reason);
  }

  // endRenewal forgets a renewal that did not take over (or that close() ends).
  function endRenewal(r) {
    if (renewal === r) renewal = null;
    clearTimeout(r.timer);
    forget(r.sock);
  }

  function open() {
    if (renewal) endRenewal(renewal);
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
      startKeepalive(sock);
      dispatch({ type: 'SOCKET_OPEN' });
    };
    listen(sock);
  }

  // refresh renews the session (and so its TURN credentials): a second socket resumes it with
  // token while the first stays open and keeps delivering. The outcome is either the second
  // socket's `resumed`, dispatched as SOCKET_MESSAGE after the first socket's last frames (the
  // second socket carries the session from then on), or REFRESH_FAILED with the first socket
  // still in charge, or, when both went down, the first socket's SOCKET_CLOSED. Call messages
  // wait meanwhile (one sent on the first socket after the hand-over would be lost); the
  // reducer flushes them with either outcome.
  function refresh(token) {
    if (renewal) return; // one at a time: its outcome answers this call too
    const old = ws;
    const fail = (why) => queueMicrotask(() => dispatch({ type: 'REFRESH_FAILED', reason: why }));
    if (!old || old.readyState !== OPEN || !token) {
      fail('no open socket');
      return;
    }
    let sock;
    try {
      sock = new WebSocketImpl(url);
    } catch (err) {
      log.warn('websocket', err);
      fail(String(err));
      return;
    }
    flowing = false;
    const r = { sock, old, confirmed: false, held: [], oldErrors: [], oldClosed: null, newClosed: null, timer: null };
    renewal = r;
    r.timer = setTimeout(() => failRenewal(r, 'timeout'), REFRESH_WITHIN_MS);
    sock.onopen = () => {
      if (renewal === r) raw(sock, { type: 'resume', token });
    };
    sock.onmessage = (ev) => {
      if (renewal !== r) return;
      const msg = parse(ev.data);
      if (!msg || msg.type === 'pong') return;
      if (r.confirmed) {
        r.held.push(msg);
        return;
      }
      if (msg.type === 'resumed') {
        r.confirmed = true;
        r.held.push(msg);
        clearTimeout(r.timer);
        if (r.oldClosed) promote(r);
        else r.timer = setTimeout(() => promote(r), RETIRE_WITHIN_MS);
        return;
      }
      if (msg.type === 'error') {
        failRenewal(r, msg.code || 'error');
        return;
      }
      log.warn('renewal socket sent', msg.type, 'before resumed; ignored');
    };
    sock.onclose = (ev) => {
      if (renewal !== r) return;
      if (!r.confirmed) failRenewal(r, `closed ${ev.code}`);
      else r.newClosed = { code: ev.code, reason: ev.reason };
    };
  }

  // failRenewal gives up on the second socket without a close frame (should its resume go
  // through after all, the server closes the first socket, and that drop is resumed as usual).
  function failRenewal(r, why) {
    if (renewal !== r) return;
    endRenewal(r);
    log.warn('renewing the session failed:', why);
    if (r.oldClosed) {
      for (const msg of r.oldErrors) dispatch({ type: 'SOCKET_MESSAGE', msg });
      if (ws === r.old) {
        ws = null;
        flowing = false;
        dispatch({ type: 'SOCKET_CLOSED', ...r.oldClosed });
      }
      return;
    }
    dispatch({ type: 'REFRESH_FAILED', reason: why });
    for (const msg of r.oldErrors) dispatch({ type: 'SOCKET_MESSAGE', msg });
  }

  // promote hands the session over to the renewal's socket once the first one is done.
  function promote(r) {
    if (renewal !== r) return;
    renewal = null;
    clearTimeout(r.timer);
    forget(r.old); // never a close frame: that would be a goodbye; the server closes it
    stopKeepalive();
    ws = r.sock;
    listen(r.sock);
    startKeepalive(r.sock);
    for (const msg of r.held) {
      if (ws !== r.sock) return; // an earlier message ended the call
      dispatch({ type: 'SOCKET_MESSAGE', msg });
    }
    if (r.newClosed) dropped(r.sock, r.newClosed.code, r.newClosed.reason);
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

  // close ends the session for good: a close frame on the socket that carries it and on a
  // renewal's socket (either may hold the membership; on both a close frame is a goodbye).
  function close() {
    stopKeepalive();
    queue = [];
    flowing = false;
    if (renewal) {
      const r = renewal;
      endRenewal(r);
      r.sock.close(1000, 'bye');
    }
    if (!ws) return;
    const old = ws;
    ws = null;
    forget(old);
    old.close(1000, 'bye');
  }

  // drop is for tests and debugging: the page gives up its socket as it does when the
  // keepalive goes unanswered.
  function drop() {
    if (ws) abandon(ws, 'dropped');
  }

  return { open, send, flush, close, drop, refresh };
}
