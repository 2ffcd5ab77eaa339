// The connection test: which URL is which check, and what the results mean in plain words.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { turnKind, portOf, stunURLs, turnEntries, describeResults } from '../static/js/nettest.js';
import { levelOf } from '../static/js/testpage.js';

const servers = [
  { urls: ['turn:turn.example.org:3478?transport=udp', 'turn:turn.example.org:3478?transport=tcp', 'turns:t.example.org:443?transport=tcp'], username: 'u', credential: 'p' },
];
const ok = (extra = {}) => ({ status: 'ok', ...extra });
const fail = { status: 'fail' };
const words = (r) => describeResults(r);
const line = (r, id) => words(r).items.find((i) => i.id === id);

describe('connection test: URLs', () => {
  test('each TURN URL is one check', () => {
    assert.equal(turnKind('turn:h:3478?transport=udp'), 'udp');
    assert.equal(turnKind('turn:h:3478'), 'udp', 'UDP is the default transport');
    assert.equal(turnKind('turn:h:3478?transport=tcp'), 'tcp');
    assert.equal(turnKind('turns:h:443?transport=tcp'), 'tls');
    assert.equal(turnKind('stun:h:3478'), '');
    assert.equal(turnKind(undefined), '');
    assert.deepEqual(turnEntries(servers).map((e) => e.kind), ['udp', 'tcp', 'tls']);
    assert.deepEqual(turnEntries(servers)[2], { kind: 'tls', url: 'turns:t.example.org:443?transport=tcp', username: 'u', credential: 'p' });
  });
  test('ports', () => {
    assert.equal(portOf('turns:t.example.org:443?transport=tcp'), 443);
    assert.equal(portOf('turn:[::1]:3479?transport=udp'), 3479);
    assert.equal(portOf('turn:h'), 3478);
    assert.equal(portOf('turns:h'), 5349);
    assert.equal(portOf('nope'), null);
  });
  test('STUN: the server\'s own, else the TURN server over UDP', () => {
    assert.deepEqual(stunURLs([{ urls: ['stun:stun.example.org:3478'] }, ...servers]), ['stun:stun.example.org:3478']);
    assert.deepEqual(stunURLs(servers), ['stun:turn.example.org:3478']);
    assert.deepEqual(stunURLs([{ urls: 'turn:[::1]:3478?transport=udp' }]), ['stun:[::1]:3478']);
    assert.deepEqual(stunURLs([]), []);
  });
});

describe('connection test: words', () => {
  const all = { media: ok({ audio: true, video: true }), stun: ok({ address: '203.0.113.7' }), udp: ok({ port: 3478 }), tcp: ok({ port: 3478 }), tls: ok({ port: 443 }), roundTrip: ok({ ms: 41.6 }) };

  test('everything works', () => {
    const r = words(all);
    assert.equal(r.summary, 'Your connection is ready for calls.');
    assert.deepEqual(r.items.map((i) => [i.id, i.status]), [['media', 'ok'], ['stun', 'ok'], ['udp', 'ok'], ['tcp', 'ok'], ['tls', 'ok'], ['roundTrip', 'ok']]);
    assert.equal(line(all, 'udp').text, 'Working on port 3478.');
    assert.equal(line(all, 'roundTrip').text, 'Data went through the relay and back in 42 ms.');
    assert.match(line(all, 'stun').text, /public address/);
    assert.match(line({ ...all, stun: ok({ sameAddress: true }) }, 'stun').text, /no address translation/);
  });

  test('UDP blocked: relayed over TLS on 443, or TCP', () => {
    const noUDP = { ...all, stun: fail, udp: { status: 'fail', port: 3478 } };
    assert.equal(words(noUDP).summary, 'Your network blocks UDP: calls will be relayed over TLS on port 443. They work, with a little more delay.');
    assert.equal(line(noUDP, 'udp').text, 'Blocked or unreachable on port 3478.');
    assert.equal(line(noUDP, 'udp').status, 'fail');
    assert.match(line(noUDP, 'stun').text, /STUN over UDP is blocked/);
    const tcpOnly = { ...noUDP, tls: { status: 'absent' } };
    assert.equal(words(tcpOnly).summary, 'Your network blocks UDP: calls will be relayed over TCP on port 3478. They work, with a little more delay.');
    assert.equal(line(tcpOnly, 'tls').text, 'Not offered by this server.');
  });

  test('no relay, or a relay that does not carry data', () => {
    const none = { media: all.media, stun: fail, udp: fail, tcp: fail, tls: fail, roundTrip: fail };
    assert.match(words(none).summary, /^No relay could be reached/);
    assert.match(words({ ...all, roundTrip: fail }).summary, /^The relay answered but data did not get through it/);
    assert.equal(words({ ...all, stun: fail }).summary, 'Your connection is ready for calls, always through the relay.');
  });

  test('camera and microphone', () => {
    assert.match(line({ media: ok({ audio: true, video: false }) }, 'media').text, /audio only/);
    const broken = { ...all, media: { status: 'fail', text: 'Blocked.' } };
    assert.equal(line(broken, 'media').text, 'Blocked.');
    assert.match(words(broken).summary, /Fix the camera and microphone first/);
  });

  test('a test that could not start says why', () => {
    assert.equal(words({ error: 'The connection test could not start: x' }).summary, 'The connection test could not start: x');
  });

  test('level meter', () => {
    assert.equal(levelOf(new Float32Array(8)), 0);
    assert.equal(levelOf(new Float32Array(8).fill(1)), 1, 'clipped to full scale');
    assert.ok(Math.abs(levelOf(new Float32Array(8).fill(0.1)) - 0.4) < 1e-6);
    assert.equal(levelOf([]), 0);
  });
});
