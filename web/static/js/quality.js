// Pure helpers over RTCPeerConnection.getStats() results: which path the call takes (direct
// or relayed) and a quality level that does not flicker. `stats` is an array of stats objects
// (Array.from(report.values())), so tests can pass plain objects.

// selectedPair finds the candidate pair in use: the transport's selectedCandidatePairId
// (Chromium, Safari), else a pair marked selected (Firefox), else a nominated succeeded pair.
export function selectedPair(stats) {
  const byId = new Map(stats.map((s) => [s.id, s]));
  for (const s of stats) {
    if (s.type === 'transport' && s.selectedCandidatePairId && byId.has(s.selectedCandidatePairId)) {
      return byId.get(s.selectedCandidatePairId);
    }
  }
  const pairs = stats.filter((s) => s.type === 'candidate-pair');
  return pairs.find((p) => p.selected) ?? pairs.find((p) => p.nominated && p.state === 'succeeded') ?? null;
}

// pathOf says 'relay' when either end of the selected pair is a TURN relay candidate,
// 'direct' for any other selected pair, and null while nothing is selected.
export function pathOf(stats) {
  const pair = selectedPair(stats);
  if (!pair) return null;
  const byId = new Map(stats.map((s) => [s.id, s]));
  const local = byId.get(pair.localCandidateId);
  const remote = byId.get(pair.remoteCandidateId);
  if (local?.candidateType === 'relay' || remote?.candidateType === 'relay') return 'relay';
  return 'direct';
}

// totalsOf sums what was received so far over every inbound RTP stream.
export function totalsOf(stats) {
  const t = { bytes: 0, packets: 0, lost: 0, framesDecoded: 0, timestamp: 0 };
  for (const s of stats) {
    if (s.type !== 'inbound-rtp') continue;
    t.bytes += s.bytesReceived ?? 0;
    t.packets += s.packetsReceived ?? 0;
    t.lost += Math.max(0, s.packetsLost ?? 0);
    if (s.kind === 'video') t.framesDecoded += s.framesDecoded ?? 0;
    t.timestamp = Math.max(t.timestamp, s.timestamp ?? 0);
  }
  return t;
}

// sampleOf compares two snapshots: round-trip time (ms), received bitrate (kbit/s) and loss (%)
// over the interval. Values that cannot be known yet are null.
export function sampleOf(prevTotals, stats) {
  const totals = totalsOf(stats);
  const pair = selectedPair(stats);
  const rttMs = typeof pair?.currentRoundTripTime === 'number' ? pair.currentRoundTripTime * 1000 : null;
  let kbps = null;
  let lossPct = null;
  // No rate until media has started flowing, so the average does not start from zero.
  if (prevTotals && prevTotals.bytes > 0 && totals.timestamp > prevTotals.timestamp) {
    const seconds = (totals.timestamp - prevTotals.timestamp) / 1000;
    kbps = Math.max(0, ((totals.bytes - prevTotals.bytes) * 8) / 1000 / seconds);
    const got = totals.packets - prevTotals.packets;
    const lost = totals.lost - prevTotals.lost;
    lossPct = got + lost > 0 ? Math.max(0, (lost / (got + lost)) * 100) : null;
  }
  return { sample: { path: pathOf(stats), rttMs, kbps, lossPct }, totals };
}

// Thresholds: 'good' is a comfortable call, 'poor' is one where people talk over each other or
// the picture freezes. Numbers follow common VoIP guidance (ITU-T G.114: under 300 ms RTT).
export const GOOD = { rttMs: 250, lossPct: 2 };
export const POOR = { rttMs: 600, lossPct: 8 };
// A new level must be seen this many samples in a row before it is shown (hysteresis).
export const HOLD_SAMPLES = 3;
// Weight of a new sample in the moving averages.
export const ALPHA = 0.3;

export const initialQuality = Object.freeze({ level: null, pending: null, streak: 0, rttMs: null, kbps: null, lossPct: null });

const ewma = (prev, next) => (next == null ? prev : prev == null ? next : prev + ALPHA * (next - prev));

// levelOf grades smoothed figures; bitrate is shown but not graded because it depends on
// what the camera sees, not only on the network.
export function levelOf({ rttMs, lossPct }) {
  if (rttMs == null && lossPct == null) return null;
  if ((rttMs ?? 0) > POOR.rttMs || (lossPct ?? 0) > POOR.lossPct) return 'poor';
  if ((rttMs ?? 0) > GOOD.rttMs || (lossPct ?? 0) > GOOD.lossPct) return 'fair';
  return 'good';
}

// updateQuality smooths a sample into the running figures and changes the shown level only
// after HOLD_SAMPLES agreeing samples, so a single bad second does not flash the indicator.
export function updateQuality(q, sample) {
  const next = {
    ...q,
    rttMs: ewma(q.rttMs, sample.rttMs),
    kbps: ewma(q.kbps, sample.kbps),
    lossPct: ewma(q.lossPct, sample.lossPct),
  };
  const candidate = levelOf(next);
  if (candidate == null || candidate === q.level) return { ...next, pending: null, streak: 0 };
  if (q.level == null) return { ...next, level: candidate, pending: null, streak: 0 };
  const streak = q.pending === candidate ? q.streak + 1 : 1;
  if (streak >= HOLD_SAMPLES) return { ...next, level: candidate, pending: null, streak: 0 };
  return { ...next, pending: candidate, streak };
}

// qualityWord is the indicator's short visible label.
export function qualityWord(q) {
  return { good: 'Good', fair: 'Fair', poor: 'Poor' }[q.level] ?? '';
}

// qualityFigures lists the smoothed figures in words.
export function qualityFigures(q) {
  const parts = [];
  if (q.rttMs != null) parts.push(`delay ${Math.round(q.rttMs)} ms`);
  if (q.kbps != null) parts.push(q.kbps >= 1000 ? `${(q.kbps / 1000).toFixed(1)} Mbit/s` : `${Math.round(q.kbps)} kbit/s`);
  if (q.lossPct != null) parts.push(`${q.lossPct.toFixed(1)}% loss`);
  return parts.join(', ');
}

// describeQuality is the indicator's full accessible text.
export function describeQuality(q) {
  if (!q.level) return 'Measuring connection quality';
  const parts = [];
  if (q.rttMs != null) parts.push(`delay ${Math.round(q.rttMs)} ms`);
  if (q.kbps != null) parts.push(q.kbps >= 1000 ? `${(q.kbps / 1000).toFixed(1)} Mbit/s` : `${Math.round(q.kbps)} kbit/s`);
  if (q.lossPct != null) parts.push(`${q.lossPct.toFixed(1)}% loss`);
  const word = { good: 'Good', fair: 'Fair', poor: 'Poor' }[q.level];
  return `${word} connection${parts.length ? `: ${parts.join(', ')}` : ''}`;
}
