// The operator's microphone from the browser: getUserMedia -> 16 kHz mono int16 frames of 100 ms,
// sent over the gateway's socket as {"op": "audio"} (the gateway publishes them as AudioFrames).

const RATE = 16000;
const FRAME = 1600; // samples: 100 ms

function toBase64(int16) {
  const bytes = new Uint8Array(int16.buffer, int16.byteOffset, int16.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

export class Microphone {
  constructor(ctx, send) {
    this.ctx = ctx;
    this.send = send;
    this.stream = null;
    this.node = null;
    this.sent = 0; // samples sent: the stream clock
    this.pending = [];
    this.carry = 0;
  }

  get on() {
    return this.stream !== null;
  }

  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    if (this.ctx.state !== "running") await this.ctx.resume();
    const source = this.ctx.createMediaStreamSource(this.stream);
    // ScriptProcessor: simple and everywhere; 4096 samples is ~85 ms at 48 kHz
    this.node = this.ctx.createScriptProcessor(4096, 1, 1);
    const step = this.ctx.sampleRate / RATE;
    this.node.onaudioprocess = (event) => {
      const input = event.inputBuffer.getChannelData(0);
      // Average over each output sample's span: a box low-pass before decimation
      let position = this.carry;
      while (position + step <= input.length) {
        const from = Math.floor(position), to = Math.floor(position + step);
        let sum = 0;
        for (let i = from; i < to; i++) sum += input[i];
        this.pending.push(sum / Math.max(1, to - from));
        position += step;
      }
      this.carry = position - input.length;
      while (this.pending.length >= FRAME) this.flush(this.pending.splice(0, FRAME));
    };
    source.connect(this.node);
    this.node.connect(this.ctx.destination); // (silent: it writes no output)
    this.source = source;
  }

  flush(samples) {
    const pcm = new Int16Array(samples.length);
    for (let i = 0; i < samples.length; i++) pcm[i] = Math.max(-32768, Math.min(32767, Math.round(samples[i] * 32767)));
    this.send({ op: "audio", pcm: toBase64(pcm), start: this.sent / RATE });
    this.sent += samples.length;
  }

  stop() {
    if (this.node) { this.node.disconnect(); this.node.onaudioprocess = null; }
    if (this.source) this.source.disconnect();
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = null;
    this.node = null;
    this.pending = [];
  }
}
