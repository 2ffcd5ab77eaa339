// The connection test ("Test my connection", /#test): with credentials the gateway issues for a
// self-test (docs/protocol.md), it checks STUN, TURN over UDP, TCP and TLS one URL at a time,
// and a round trip through the relay between two peer connections in this page. The checks
// are in runChecks (browser APIs passed in); what the results mean is in describeResults, pure.

import { traceparent } from './trace.js';

// Bounds, each with its reason. Gathering over TCP or TLS on a slow network takes seconds;
// past these the check has failed for any call's purpose too.
export const TestTiming = Object.freeze({
  CREDENTIALS_MS: 10000, // the gateway's answer to self-test
  STUN_MS: 5000,
  RELAY_MS: 8000, // one TURN URL's relay candidate
  ROUND_TRIP_MS: 10000, // two relay-only peer connections connect and echo
});

// turnKind says which check a TURN URL belongs to: 'udp', 'tcp', 'tls', or '' for other URLs.
export function turnKind(url) {
  const m = /^(turns?):([^?]+)(?:\?transport=(udp|tcp))?$/i.exec(url ?? '');
  if (!m) return '';
  if (m[1].toLowerCase() === 'turns') return 'tls';
  return (m[3] ?? 'udp').toLowerCase();
}

// portOf is the port of a stun:/turn:/turns: URL, or the scheme's default.
export function portOf(url) {
  const m = /^(stuns?|turns?):(?:\[[^\]]+\]|[^:?]+)(?::(\d+))?/i.exec(url ?? '');
  if (!m) return null;
  if (m[2]) return Number(m[2]);
  return /s$/i.test(m[1]) ? 5349 : 3478;
}

// stunURLs are the STUN URLs to try: the server's, or else the TURN server over UDP, which
// answers STUN binding requests on its own port.
export function stunURLs(iceServers) {
  const urls = (iceServers ?? []).flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls]));
  const stun = urls.filter((u) => /^stuns?:/i.test(u));
  if (stun.length) return stun;
  const udp = urls.find((u) => turnKind(u) === 'udp');
  return udp ? [`stun:${udp.replace(/^turn:/i, '').split('?')[0]}`] : [];
}

// turnEntries lists each TURN URL with its credential, for one check each.
export function turnEntries(iceServers) {
  const out = [];
  for (const s of iceServers ?? []) {
    for (const url of Array.isArray(s.urls) ? s.urls : [s.urls]) {
      const kind = turnKind(url);
      if (kind) out.push({ kind, url, username: s.username, credential: s.credential });
    }
  }
  return out;
}

const port = (r) => (r?.port ? ` on port ${r.port}` : '');

// describeResults turns the results into plain words: one line per check, and what it means
// for a call. results: {media, stun, udp, tcp, tls, roundTrip}, each {status, ...} with status
// 'ok', 'fail', 'absent' (the server offers no such URL) or 'skipped'; media may carry
// {audio, video, error}; stun 'ok' has {address} or {sameAddress: true}; roundTrip 'ok' {ms}.
export function describeResults(r) {
  const items = [];
  const add = (id, status, title, text) => items.push({ id, status, title, text });
  const m = r.media ?? { status: 'skipped' };
  if (m.status === 'ok') {
    add('media', 'ok', 'Camera and microphone', m.video ? 'Working: you should see yourself and the meter should move when you speak.' : 'Your microphone works, but no camera was found: calls will be audio only on your side.');
  } else if (m.status === 'fail') {
    add('media', 'fail', 'Camera and microphone', m.text ?? 'They could not be started.');
  }
  const s = r.stun ?? { status: 'skipped' };
  if (s.status === 'ok') {
    add('stun', 'ok', 'Direct connections', s.sameAddress
      ? 'Possible: the server sees your device\u2019s own address (no address translation in between).'
      : 'Possible: the server sees your network\u2019s public address, so the other person can try to reach you directly.');
  } else if (s.status === 'fail') {
    add('stun', 'fail', 'Direct connections', 'Your network did not let the address check through (STUN over UDP is blocked): calls go through the relay.');
  }
  const relay = (id, name, x) => {
    if (!x || x.status === 'skipped') return;
    if (x.status === 'absent') add(id, 'absent', `Relay over ${name}`, 'Not offered by this server.');
    else if (x.status === 'ok') add(id, 'ok', `Relay over ${name}`, `Working${port(x)}.`);
    else add(id, 'fail', `Relay over ${name}`, `Blocked or unreachable${port(x)}.`);
  };
  relay('udp', 'UDP', r.udp);
  relay('tcp', 'TCP', r.tcp);
  relay('tls', 'TLS', r.tls);
  const rt = r.roundTrip ?? { status: 'skipped' };
  if (rt.status === 'ok') add('roundTrip', 'ok', 'Round trip through the relay', `Data went through the relay and back in ${Math.round(rt.ms)} ms.`);
  else if (rt.status === 'fail') add('roundTrip', 'fail', 'Round trip through the relay', 'Data sent through the relay did not come back.');
  return { items, summary: summarize(r) };
}

// summarize is the one sentence that says what the results mean for a call.
function summarize(r) {
  const ok = (x) => x?.status === 'ok';
  if (r.error) return r.error;
  const relays = ['udp', 'tcp', 'tls'].filter((k) => ok(r[k]));
  const media = r.media?.status === 'fail' ? ' Fix the camera and microphone first: a call needs at least a microphone.' : '';
  if (!relays.length) {
    return `No relay could be reached: calls work only where a direct connection is possible, which most networks with a firewall do not allow.${media}`;
  }
  if (!ok(r.roundTrip)) {
    return `The relay answered but data did not get through it: calls may fail to connect. Try another network, or ask the operator.${media}`;
  }
  if (ok(r.udp)) {
    return `Your connection is ready for calls${ok(r.stun) ? '' : ', always through the relay'}.${media}`;
  }
  const via = ok(r.tls) ? `TLS${port(r.tls)}` : `TCP${port(r.tcp)}`;
  return `Your network blocks UDP: calls will be relayed over ${via}. They work, with a little more delay.${media}`;
}

// gather makes one peer connection with config, starts gathering and resolves with the
// candidates found (an RTCIceCandidate's type, protocol, address) when gathering completes,
// one of want is found, or ms pass.
export function gather(RTCPeerConnectionImpl, config, want, ms, clock = globalThis) {
  return new Promise((resolve) => {
    const pc = new RTCPeerConnectionImpl(config);
    const found = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clock.clearTimeout(timer);
      pc.close();
      resolve(found);
    };
    const timer = clock.setTimeout(finish, ms);
    pc.onicecandidate = (e) => {
      if (!e.candidate) return finish(); // gathering complete
      const c = e.candidate;
      found.push({ type: c.type, protocol: c.protocol, address: c.address, relayProtocol: c.relayProtocol });
      if (want.includes(c.type)) finish();
      return undefined;
    };
    pc.createDataChannel('probe'); // something to negotiate, so candidates are gathered
    pc.createOffer().then((o) => pc.setLocalDescription(o)).catch(finish);
  });
}

// roundTrip connects two relay-only peer connections in this page and echoes one message over
// a data channel; it resolves with the milliseconds it took, or null.
export function roundTrip(RTCPeerConnectionImpl, iceServers, ms, clock = globalThis) {
  return new Promise((resolve) => {
    const config = { iceServers, iceTransportPolicy: 'relay' };
    const a = new RTCPeerConnectionImpl(config);
    const b = new RTCPeerConnectionImpl(config);
    let done = false;
    const finish = (value) => {
      if (done) return;
      done = true;
      clock.clearTimeout(timer);
      a.close();
      b.close();
      resolve(value);
    };
    const timer = clock.setTimeout(() => finish(null), ms);
    a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate).catch(() => {});
    b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate).catch(() => {});
    b.ondatachannel = (e) => {
      e.channel.onmessage = (m) => e.channel.send(m.data); // the echo
    };
    const ch = a.createDataChannel('echo');
    let sent = 0;
    ch.onopen = () => {
      sent = performance.now();
      ch.send('tuturu-echo');
    };
    ch.onmessage = (m) => finish(m.data === 'tuturu-echo' ? performance.now() - sent : null);
    (async () => {
      await a.setLocalDescription(await a.createOffer());
      await b.setRemoteDescription(a.localDescription);
      await b.setLocalDescription(await b.createAnswer());
      await a.setRemoteDescription(b.localDescription);
    })().catch(() => finish(null));
  });
}

// fetchCredentials opens /ws, sends self-test and resolves with the answer's data; the socket
// stays open while the checks run (closing it revokes the credentials) and is returned to be
// closed.
export function fetchCredentials(url, WebSocketImpl, random, ms, clock = globalThis) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocketImpl(url);
    const timer = clock.setTimeout(() => {
      ws.close(1000);
      reject(new Error('The server did not answer.'));
    }, ms);
    ws.onopen = () => ws.send(JSON.stringify({ type: 'self-test', traceparent: traceparent(random(24)) }));
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      clock.clearTimeout(timer);
      if (msg.type === 'self-test' && msg.data && Array.isArray(msg.data.iceServers)) {
        resolve({ ws, iceServers: msg.data.iceServers });
      } else {
        ws.close(1000);
        reject(new Error(msg.type === 'error' && msg.error ? `${msg.error}${msg.supportCode ? ` (support code ${msg.supportCode})` : ''}` : 'The server gave no test credentials.'));
      }
    };
    ws.onclose = () => {
      clock.clearTimeout(timer);
      reject(new Error('Could not reach the server.'));
    };
  });
}

// runChecks runs every network check in order and reports each result as it comes through
// onResult(name, result); it resolves with all results.
export async function runChecks({ url, WebSocketImpl, RTCPeerConnectionImpl, random, onResult = () => {} }) {
  const results = {};
  const set = (name, value) => {
    results[name] = value;
    onResult(name, value);
  };
  let creds;
  try {
    creds = await fetchCredentials(url, WebSocketImpl, random, TestTiming.CREDENTIALS_MS);
  } catch (err) {
    set('error', `The connection test could not start: ${err.message}`);
    return results;
  }
  try {
    const entries = turnEntries(creds.iceServers);
    for (const kind of ['udp', 'tcp', 'tls']) {
      const e = entries.find((x) => x.kind === kind);
      if (!e) {
        set(kind, { status: 'absent' });
        continue;
      }
      const cands = await gather(RTCPeerConnectionImpl, { iceServers: [{ urls: [e.url], username: e.username, credential: e.credential }], iceTransportPolicy: 'relay' }, ['relay'], TestTiming.RELAY_MS);
      set(kind, { status: cands.some((c) => c.type === 'relay') ? 'ok' : 'fail', port: portOf(e.url) });
    }
    const stun = stunURLs(creds.iceServers);
    if (stun.length) {
      const cands = await gather(RTCPeerConnectionImpl, { iceServers: [{ urls: stun }] }, ['srflx'], TestTiming.STUN_MS);
      const srflx = cands.find((c) => c.type === 'srflx');
      // A browser drops a server-reflexive candidate equal to a host candidate: no NAT in
      // between. STUN shares the relay's UDP port, so a working UDP relay proves it answered.
      if (srflx) set('stun', { status: 'ok', address: srflx.address });
      else set('stun', results.udp?.status === 'ok' ? { status: 'ok', sameAddress: true } : { status: 'fail' });
    }
    const relayServers = entries.filter((e) => results[e.kind]?.status === 'ok').map((e) => ({ urls: [e.url], username: e.username, credential: e.credential }));
    if (relayServers.length) {
      const took = await roundTrip(RTCPeerConnectionImpl, relayServers, TestTiming.ROUND_TRIP_MS);
      set('roundTrip', took === null ? { status: 'fail' } : { status: 'ok', ms: took });
    } else {
      set('roundTrip', { status: 'fail' });
    }
  } finally {
    creds.ws.onclose = null;
    creds.ws.close(1000); // revokes the test credentials at once
  }
  return results;
}
