// The RTCPeerConnection to the other member. Offers, answers and candidates go out as actions
// (LOCAL_DESCRIPTION, LOCAL_CANDIDATE) so the reducer decides what is sent; every event of a
// replaced connection is ignored. Once a negotiation completes, the safety code of the two
// descriptions goes out as SAFETY_CODE.

import { safetyCode } from './safety.js';

// Remote candidates that arrive before the remote description are held; an offer with a few
// dozen candidates is normal, more is a misbehaving peer.
const MAX_PENDING_CANDIDATES = 100;

export function createPeer({ dispatch, media, remoteVideo, log, onRemotePlayBlocked = () => {} }) {
  let pc = null;
  let remoteSet = false; // setRemoteDescription was called on this pc
  let pending = [];

  const plain = (d) => ({ type: d.type, sdp: d.sdp });

  function close() {
    if (pc) {
      const old = pc;
      pc = null;
      old.close();
    }
    remoteSet = false;
    pending = [];
    remoteVideo.srcObject = null;
  }

  function create(session) {
    close();
    const p = new RTCPeerConnection({ iceServers: session?.iceServers ?? [], iceTransportPolicy: session?.iceTransportPolicy ?? 'all' });
    pc = p;
    const stream = media.stream();
    for (const t of stream?.getTracks() ?? []) p.addTrack(t, stream);
    p.onicecandidate = (e) => {
      if (pc === p && e.candidate && e.candidate.candidate) dispatch({ type: 'LOCAL_CANDIDATE', candidate: e.candidate.toJSON() });
    };
    p.oniceconnectionstatechange = () => {
      if (pc === p) dispatch({ type: 'ICE_STATE', state: p.iceConnectionState });
    };
    p.ontrack = (e) => {
      if (pc !== p) return;
      let s = e.streams[0];
      if (!s) {
        s = remoteVideo.srcObject instanceof MediaStream ? remoteVideo.srcObject : new MediaStream();
        s.addTrack(e.track);
      }
      if (remoteVideo.srcObject !== s) remoteVideo.srcObject = s;
      remoteVideo.play().catch((err) => {
        if (err?.name === 'NotAllowedError') onRemotePlayBlocked();
      });
    };
  }

  // reportSafety derives the safety code from the descriptions in effect (both set, no offer
  // pending) and reports it, unless the connection was replaced meanwhile.
  async function reportSafety(p) {
    const local = p.currentLocalDescription;
    const remote = p.currentRemoteDescription;
    if (pc !== p || p.signalingState !== 'stable' || !local || !remote) return;
    let words = null;
    try {
      words = await safetyCode(local.sdp, remote.sdp);
    } catch (err) {
      log.warn('safety code', err?.name);
    }
    if (pc === p) dispatch({ type: 'SAFETY_CODE', words });
  }

  const guard = (p, err, what) => {
    if (pc !== p) return;
    log.warn(what, err);
    dispatch({ type: 'PC_ERROR', what, name: err?.name });
  };

  // offer makes sure we also receive what we do not send (audio-only callers still see video).
  async function offer({ iceRestart = false } = {}) {
    const p = pc;
    if (!p) return;
    try {
      for (const kind of ['audio', 'video']) {
        if (!p.getTransceivers().some((t) => t.receiver.track.kind === kind)) {
          p.addTransceiver(kind, { direction: 'recvonly' });
        }
      }
      if (iceRestart && p.signalingState === 'have-local-offer') {
        // The last offer got no answer (lost while the socket was down): start over.
        await p.setLocalDescription({ type: 'rollback' });
      }
      const o = await p.createOffer({ iceRestart });
      if (pc !== p) return;
      await p.setLocalDescription(o);
      if (pc !== p) return;
      dispatch({ type: 'LOCAL_DESCRIPTION', description: plain(p.localDescription) });
    } catch (err) {
      guard(p, err, 'offer');
    }
  }

  // reportIce repeats the ICE state after a negotiation: an ICE restart on a path that still
  // works completes without any state change event, and the reducer must learn it is over.
  function reportIce(p) {
    if (pc === p && (p.iceConnectionState === 'connected' || p.iceConnectionState === 'completed')) {
      dispatch({ type: 'ICE_STATE', state: p.iceConnectionState });
    }
  }

  function flushPending(p) {
    const held = pending;
    pending = [];
    for (const c of held) p.addIceCandidate(c).catch((err) => log.warn('remote candidate', err?.name));
  }

  async function answer(description) {
    const p = pc;
    if (!p) return;
    try {
      remoteSet = true;
      const applying = p.setRemoteDescription(description);
      flushPending(p); // chained after the description by the peer connection's queue
      await applying;
      const a = await p.createAnswer();
      if (pc !== p) return;
      await p.setLocalDescription(a);
      if (pc !== p) return;
      dispatch({ type: 'LOCAL_DESCRIPTION', description: plain(p.localDescription) });
      reportIce(p);
      await reportSafety(p);
    } catch (err) {
      guard(p, err, 'answer');
    }
  }

  async function remote(description) {
    const p = pc;
    if (!p) return;
    try {
      remoteSet = true;
      const applying = p.setRemoteDescription(description);
      flushPending(p);
      await applying;
      reportIce(p);
      await reportSafety(p);
    } catch (err) {
      guard(p, err, 'remote description');
    }
  }

  function candidate(c) {
    const p = pc;
    if (!p) return;
    if (!remoteSet) {
      if (pending.length < MAX_PENDING_CANDIDATES) pending.push(c);
      return;
    }
    p.addIceCandidate(c).catch((err) => log.warn('remote candidate', err?.name));
  }

  function configure(session) {
    if (!pc || !session) return;
    try {
      // Used from the next gathering on: an ICE restart made after this relays with these.
      pc.setConfiguration({ ...pc.getConfiguration(), iceServers: session.iceServers, iceTransportPolicy: session.iceTransportPolicy });
      log.debug('ICE servers applied', session.iceServers.length);
    } catch (err) {
      log.warn('new ICE servers not applied', err?.name);
    }
  }

  async function replaceVideoTrack(track) {
    const t = pc?.getTransceivers().find((x) => x.receiver.track.kind === 'video');
    if (t) await t.sender.replaceTrack(track);
  }

  return { create, close, offer, restartIce: () => offer({ iceRestart: true }), answer, remote, candidate, configure, replaceVideoTrack, current: () => pc };
}
