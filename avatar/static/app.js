// The page: connects to the gateway with the token of its link, keeps the connection (and
// reconnects after a gateway restart), plays the twin's speech with its mouth in step, and feeds
// the console. A small test hook (window.__twinTest) reads back what happened.

import { Console } from "./console.js";
import { Face } from "./face.js";
import { Microphone } from "./microphone.js";
import { SpeechPlayer, epochMs } from "./speech.js";

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.hash.slice(1)).get("token");

const ctx = new AudioContext({ latencyHint: "interactive" });
const face = new Face($("face"));
let player = new SpeechPlayer(ctx, {});
let socket = null;
let retries = 0;
let refused = false;
let subtitleSeg = null;

const test = {
  connected: false, welcomes: 0, role: null, frames: [], speeches: [], cuts: [], errors: [],
  acks: [], pongs: [], received: {}, rafTimes: [],
};

function send(frame) {
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify(frame));
    return true;
  }
  return false;
}
const consoleView = new Console(send);
const microphone = new Microphone(ctx, send);

// The operator may speak through the browser instead of a microphone on the twin's machine
$("mic").addEventListener("click", async () => {
  const button = $("mic");
  if (microphone.on) {
    microphone.stop();
  } else {
    try {
      await microphone.start();
    } catch (error) {
      toast(`Microphone unavailable: ${error.message || error}`);
    }
  }
  button.setAttribute("aria-pressed", String(microphone.on));
  button.textContent = microphone.on ? "Microphone on" : "Microphone off";
});

function banner(text, fatal = false) {
  const b = $("banner");
  b.textContent = text || "";
  b.hidden = !text;
  b.classList.toggle("fatal", fatal);
}

let toastTimer = null;
function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 3500);
}

function connection(state, text) {
  const c = $("conn");
  c.classList.toggle("live", state === "live");
  c.classList.toggle("down", state === "down");
  $("conn-text").textContent = text;
}

function connect() {
  if (!token) {
    refused = true;
    connection("down", "no token");
    banner("This page needs a session link: `twin run` prints one per role (operator, trainer, viewer).", true);
    return;
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws`);
  socket.onopen = () => socket.send(JSON.stringify({ op: "hello", token }));
  socket.onmessage = (event) => handle(JSON.parse(event.data));
  socket.onclose = (event) => {
    test.connected = false;
    if (event.code === 4401) {
      refused = true;
      connection("down", "refused");
      banner("This link is not valid for the running session. Ask for a new link.", true);
      return;
    }
    player.stop(null);
    const wait = Math.min(5000, 250 * 2 ** retries++);
    connection("down", "reconnecting");
    banner(`Connection to the twin lost; reconnecting…`);
    setTimeout(connect, wait);
  };
}

function handle(msg) {
  const receivedAt = epochMs();
  test.received[msg.type] = (test.received[msg.type] || 0) + 1;
  switch (msg.type) {
    case "welcome":
      retries = 0;
      test.connected = true;
      test.welcomes++;
      test.role = msg.role;
      player.stop(null);
      player = new SpeechPlayer(ctx, msg.visemes);
      consoleView.reset(msg);
      idleSubtitle(msg);
      $("mic").hidden = !msg.can.includes("audio") || !navigator.mediaDevices;
      connection("live", "live");
      banner("");
      break;
    case "speech": {
      const record = player.enqueue(msg, receivedAt);
      test.speeches.push(record);
      face.setExpression(msg.expression);
      setExpression(msg.expression);
      break;
    }
    case "speech_cut":
      test.cuts.push({ turn: msg.turn, at: receivedAt, stopped: player.stop(msg.turn) });
      consoleView.cut(msg);
      break;
    case "interrupt":
      test.cuts.push({ turn: msg.target_turn, at: receivedAt, stopped: player.stop(msg.target_turn) });
      break;
    case "transcript": consoleView.transcript(msg); break;
    case "twin_decision":
      consoleView.decision(msg);
      face.setExpression(msg.expression);
      setExpression(msg.expression);
      break;
    case "twin_utterance": consoleView.utterance(msg); break;
    case "operator_state": consoleView.operatorState(msg); break;
    case "emotion_estimate": consoleView.emotion(msg); break;
    case "mission_event": consoleView.mission(msg); break;
    case "trainer_control": consoleView.control(msg); break;
    case "actor_error": consoleView.actorError(msg); break;
    case "turn_latency": consoleView.latency(msg); break;
    case "video_thumbnail": consoleView.thumbnail(msg); break;
    case "ack":
      test.acks.push(msg);
      if (msg.op === "say") consoleView.said(msg);
      else toast(`Sent: ${msg.command.replace("_", " ")}`);
      break;
    case "pong": test.pongs.push({ t: msg.t, at: receivedAt, size: msg.pad.length }); break;
    case "error":
      test.errors.push(msg);
      if (!refused && !consoleView.sayRefused(msg)) toast(`Refused: ${msg.message}`);
      break;
    default: break;
  }
}

function setExpression(name) {
  const chip = $("expression");
  chip.textContent = name || "calm";
  chip.className = `chip ${name || "calm"}`;
}

// Sound: Chromium keeps an AudioContext suspended until the user interacts with the page.
function audioGate() {
  $("overlay").hidden = ctx.state === "running";
}
ctx.onstatechange = audioGate;
$("enable-sound").addEventListener("click", () => ctx.resume());
for (const kind of ["pointerdown", "keydown"]) {
  window.addEventListener(kind, () => { if (ctx.state !== "running") ctx.resume(); });
}
audioGate();

// Every frame: the mouth from the viseme track at the audio clock, the rest of the face idles.
let lastFrame = performance.now();
function frame(now) {
  const audioNow = player.now();
  const active = player.active(audioNow);
  let weights = {};
  let viseme = null;
  if (active) {
    const { seg, t } = active;
    const shape = player.weightsAt(seg, t);
    weights = shape.weights;
    viseme = shape.viseme;
    const wall = epochMs();
    if (seg.startedAt === null) seg.startedAt = wall;
    if (seg.audibleAt === null && player.level() > 0.005) seg.audibleAt = wall;
    showSubtitle(seg, t);
  } else if (subtitleSeg && audioNow > subtitleSeg.startAt + subtitleSeg.duration + 2.5) {
    $("subtitle").classList.add("past"); // the last words stay, dimmed
    subtitleSeg = null;
  }
  face.render(weights, now);
  const speaking = active ? "speaking" : "";
  if ($("speaking").textContent !== speaking) $("speaking").textContent = speaking;
  const dt = now - lastFrame;
  lastFrame = now;
  test.rafTimes.push(now);
  if (test.rafTimes.length > 2000) test.rafTimes.splice(0, 1000);
  if (active) {
    test.frames.push({ wall: epochMs(), turn: active.seg.turn, index: active.seg.index,
      t: active.t, viseme, ...face.shape(), dt });
    if (test.frames.length > 20000) test.frames.splice(0, 10000);
  }
  consoleView.tick();
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);

// Before the first words: a dim line in the subtitle's own type (which also spares the first
// sentence the cost of laying out that type for the first time).
function idleSubtitle(welcome) {
  if (subtitleSeg) return;
  const persona = welcome.mission && welcome.mission.persona;
  const box = $("subtitle");
  box.textContent = `${(persona && (persona.callsign || persona.name)) || "Twin"} is ready.`;
  box.classList.add("past");
}

function showSubtitle(seg, t) {
  const box = $("subtitle");
  if (subtitleSeg !== seg) {
    subtitleSeg = seg;
    box.innerHTML = "";
    box.classList.remove("past");
    const said = document.createElement("span");
    said.className = "said";
    const unsaid = document.createElement("span");
    unsaid.className = "unsaid";
    box.append(said, unsaid);
  }
  const words = seg.words.length ? seg.words : null;
  const [said, unsaid] = box.children;
  if (!words) { said.textContent = seg.text; unsaid.textContent = ""; return; }
  const spoken = words.filter((w) => w.start <= t).length;
  if (seg.shownWords === spoken) return; // a word at a time: no layout in between
  seg.shownWords = spoken;
  // The sentence as written (the timed words are normalised for the voice), lit up in
  // proportion to the words heard so far
  const tokens = seg.text.split(/\s+/).filter(Boolean);
  const lit = Math.round((spoken / words.length) * tokens.length);
  said.textContent = tokens.slice(0, lit).join(" ");
  unsaid.textContent = (lit ? " " : "") + tokens.slice(lit).join(" ");
}

// The test hook: read-only views of what the page did, and a way to send raw frames.
const clean = (s) => {
  const { source_node, ...rest } = s;
  return rest;
};
window.__twinTest = {
  state: () => ({
    connected: test.connected, welcomes: test.welcomes, role: test.role, audio: ctx.state,
    speeches: test.speeches.map(clean), cuts: test.cuts, errors: test.errors, acks: test.acks,
    received: test.received, pongs: test.pongs,
  }),
  frames: (since = 0) => test.frames.filter((f) => f.wall >= since),
  fps: (seconds = 2) => {
    const now = performance.now();
    const recent = test.rafTimes.filter((t) => t >= now - seconds * 1000);
    return recent.length / seconds;
  },
  send: (text) => { if (socket && socket.readyState === WebSocket.OPEN) { socket.send(text); return true; } return false; },
  ping: (pad = 0) => send({ op: "ping", t: epochMs(), pad }),
  microphone: () => ({ on: microphone.on, sent: microphone.sent }),
  // A browser that holds sound back until the user interacts leaves the context suspended
  suspendAudio: () => ctx.suspend(),
  transcriptText: () => $("transcript").innerText,
};

connect();
