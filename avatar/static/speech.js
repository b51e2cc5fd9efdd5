// The twin's voice in the page: each Speech message's PCM becomes an AudioBuffer scheduled on the
// Web Audio clock, sentences back to back; the viseme track is read against that same clock, so
// the mouth is in step with what is heard. `stop(turn)` silences a turn at once (SpeechCut or
// Interrupt).

const BLEND = 0.03; // seconds either side of a viseme boundary over which shapes cross-fade
const LEAD = 0.01; // seconds between scheduling and the first sample (never in the past)

export function base64ToInt16(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length & ~1);
  for (let i = 0; i < bytes.length; i++) bytes[i] = raw.charCodeAt(i);
  return new Int16Array(bytes.buffer);
}

export function epochMs() {
  return performance.timeOrigin + performance.now();
}

export class SpeechPlayer {
  constructor(ctx, visemeTable) {
    this.ctx = ctx;
    this.table = visemeTable || {};
    this.gain = ctx.createGain();
    this.analyser = ctx.createAnalyser();
    this.analyser.fftSize = 512;
    this.gain.connect(this.analyser);
    this.analyser.connect(ctx.destination);
    this.samples = new Float32Array(this.analyser.fftSize);
    this.segments = [];
    this.queueEnd = 0;
    this.cutTurns = new Set();
  }

  // The time now on the audio clock as heard (output latency taken off when the browser says).
  now() {
    const ctx = this.ctx;
    if (ctx.getOutputTimestamp) {
      const stamp = ctx.getOutputTimestamp();
      if (stamp.contextTime > 0 && stamp.performanceTime > 0) {
        return stamp.contextTime + (performance.now() - stamp.performanceTime) / 1000;
      }
    }
    return ctx.currentTime - (ctx.outputLatency || 0);
  }

  // Schedule one Speech message; returns the record kept for it (also for the test hook).
  enqueue(msg, receivedAt) {
    const record = {
      turn: msg.turn, index: msg.index, text: msg.text, t: msg.t, seq: msg.seq,
      source: msg.source, receivedAt, expression: msg.expression, visemes: msg.visemes || [],
      words: msg.words || [], played: false, muted: false, startAt: null, startEpoch: null,
      duration: 0, startedAt: null, audibleAt: null,
    };
    if (this.cutTurns.has(msg.turn)) {
      record.dropped = "turn was cut";
      return record;
    }
    const pcm = base64ToInt16(msg.pcm);
    record.duration = pcm.length / msg.sample_rate;
    if (this.ctx.state !== "running" || pcm.length === 0) {
      record.muted = this.ctx.state !== "running";
      return record;
    }
    const buffer = this.ctx.createBuffer(1, pcm.length, msg.sample_rate);
    const data = buffer.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) data[i] = pcm[i] / 32768;
    const source = this.ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(this.gain);
    const clock = this.ctx.currentTime;
    const at = Math.max(clock + LEAD, this.queueEnd);
    source.start(at);
    record.startAt = at;
    record.startEpoch = epochMs() + (at - clock) * 1000;
    record.source_node = source;
    this.queueEnd = at + record.duration;
    this.segments.push(record);
    source.onended = () => {
      this.segments = this.segments.filter((s) => s !== record);
    };
    return record;
  }

  // Silence a turn now (null: whatever is playing or queued).
  stop(turn) {
    let stopped = 0;
    for (const seg of this.segments) {
      if (turn === null || turn === undefined || seg.turn === turn) {
        try { seg.source_node.stop(); } catch (e) { /* already stopped */ }
        seg.cut = true;
        stopped++;
      }
    }
    this.segments = this.segments.filter((s) => !s.cut);
    if (turn !== null && turn !== undefined) this.cutTurns.add(turn);
    const last = this.segments.reduce((end, s) => Math.max(end, s.startAt + s.duration), 0);
    this.queueEnd = Math.max(this.ctx.currentTime, last);
    return stopped;
  }

  // The segment being heard at audio time `now` and the time into it, or null.
  active(now) {
    for (const seg of this.segments) {
      if (now >= seg.startAt && now < seg.startAt + seg.duration) return { seg, t: now - seg.startAt };
    }
    return null;
  }

  // Blendshape weights of the track at `t`, cross-fading at boundaries; and the viseme held.
  weightsAt(seg, t) {
    const track = seg.visemes;
    let i = track.findIndex((v) => t >= v.start && t < v.start + v.duration);
    if (i < 0) return { viseme: "sil", weights: {} };
    const v = track[i];
    let a = v, b = null, k = 0;
    const blend = Math.min(BLEND, v.duration / 2);
    if (t > v.start + v.duration - blend && i + 1 < track.length) {
      b = track[i + 1];
      k = (t - (v.start + v.duration - blend)) / (2 * blend);
    } else if (t < v.start + blend && i > 0) {
      a = track[i - 1];
      b = v;
      k = 0.5 + (t - v.start) / (2 * blend);
    }
    const weights = {};
    const add = (shape, scale) => {
      const table = this.table[shape.viseme] || {};
      for (const [name, value] of Object.entries(table)) {
        weights[name] = (weights[name] || 0) + value * (shape.weight ?? 1) * scale;
      }
    };
    if (b) { add(a, 1 - k); add(b, k); } else add(a, 1);
    return { viseme: v.viseme, weights };
  }

  // Loudness of what the graph is playing now (0..1): evidence that audio really flows.
  level() {
    this.analyser.getFloatTimeDomainData(this.samples);
    let sum = 0;
    for (const x of this.samples) sum += x * x;
    return Math.sqrt(sum / this.samples.length);
  }
}
