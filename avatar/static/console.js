// The console beside the face: mission (clock, phase, objectives, events, trainer controls),
// the operator's state (emotion, valence/arousal, each modality's part, trend), the live
// transcript (with a box to type to the twin on the operator and trainer pages) and the latency
// of each turn. It only renders what the gateway sends: a typed line appears when its
// transcript comes back from the bus, like a spoken one.

const $ = (id) => document.getElementById(id);

function node(tag, cls, text) {
  const n = document.createElement(tag);
  if (cls) n.className = cls;
  if (text !== undefined) n.textContent = text;
  return n;
}

export function clockText(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h ? `T+${two(h)}:${two(m)}:${two(sec)}` : `T+${two(m)}:${two(sec)}`;
}

const pct = (x) => `${Math.round(x * 100)}%`;
const num = (x) => (x === null || x === undefined ? "—" : Number(x).toFixed(2));

export class Console {
  constructor(send) {
    this.send = send;
    this.welcome = null;
    this.clock = null; // {missionTime, at (epoch ms), paused, ended}
    this.offset = 0; // server clock minus page clock (ms)
    this.partials = new Map(); // turn -> <li>
    this.replies = new Map(); // turn -> {li, text}
    this.vaTrail = [];
    this.endArmed = false;
    this.sayPending = null; // the text of the last "say" not yet acknowledged or refused
    for (const button of document.querySelectorAll("#controls button")) {
      button.addEventListener("click", () => this.command(button.dataset.command));
    }
    // A form: Enter in the box and the Send button both submit it
    $("say").addEventListener("submit", (event) => {
      event.preventDefault();
      this.say();
    });
  }

  reset(welcome) {
    this.welcome = welcome;
    this.offset = welcome.server_time * 1000 - Date.now();
    const mission = welcome.mission;
    $("mission-title").textContent = mission ? `${mission.title} · ${welcome.mode}` : welcome.session;
    $("role").textContent = welcome.role;
    $("role").hidden = false;
    if (mission && mission.persona) $("persona").textContent = mission.persona.callsign || mission.persona.name;
    for (const id of ["objectives", "events", "transcript", "latency", "inject-select"]) $(id).innerHTML = "";
    this.partials.clear();
    this.replies.clear();
    this.vaTrail = [];
    this.clock = null;
    $("phase").textContent = "—";
    for (const objective of mission ? mission.objectives : []) {
      const li = node("li", "", objective.text);
      li.dataset.id = objective.id;
      $("objectives").appendChild(li);
    }
    const trainer = welcome.can.includes("control");
    $("controls").hidden = !trainer;
    $("say").hidden = !welcome.can.includes("say");
    this.sayPending = null;
    this.sayError("");
    if (trainer && mission) {
      for (const inject of mission.injects) {
        const option = node("option", "", `${inject.id} (${inject.priority})`);
        option.value = inject.id;
        $("inject-select").appendChild(option);
      }
      $("btn-inject").disabled = mission.injects.length === 0;
    }
    this.drawVA(null);
  }

  command(name) {
    if (name === "end" && !this.endArmed) {
      this.endArmed = true;
      $("btn-end").textContent = "Confirm end";
      $("btn-end").classList.add("confirm");
      setTimeout(() => this.disarm(), 4000);
      return;
    }
    this.disarm();
    const argument = name === "inject" ? $("inject-select").value : name === "end" ? "ended by the trainer" : "";
    this.send({ op: "control", command: name, argument });
  }

  // Typed words for the twin; the gateway checks them (empty, too long) and says why it refuses
  say() {
    const text = $("say-text").value;
    this.sayError("");
    if (!this.send({ op: "say", text })) {
      this.sayError("Not connected to the twin: try again in a moment.");
      return;
    }
    this.sayPending = text;
  }

  said() {
    // Accepted: clear the box unless something else has been typed since
    if (this.sayPending !== null && $("say-text").value === this.sayPending) $("say-text").value = "";
    this.sayPending = null;
  }

  // An error frame about the text box is shown beside it (true), anything else is not (false)
  sayRefused(error) {
    if (error.op !== "say" && !(error.op === undefined && this.sayPending !== null)) return false;
    this.sayPending = null;
    this.sayError(error.message);
    return true;
  }

  sayError(text) {
    const box = $("say-error");
    box.textContent = text;
    box.hidden = !text;
    $("say-text").setAttribute("aria-invalid", text ? "true" : "false");
  }

  disarm() {
    this.endArmed = false;
    $("btn-end").textContent = "End mission";
    $("btn-end").classList.remove("confirm");
  }

  feed(text, cls, missionTime) {
    const li = node("li", cls || "");
    if (missionTime !== undefined && missionTime !== null) li.appendChild(node("span", "time", clockText(missionTime)));
    li.appendChild(document.createTextNode(text));
    const list = $("events");
    list.prepend(li);
    while (list.children.length > 60) list.lastChild.remove();
  }

  mission(event) {
    const mission = this.welcome && this.welcome.mission;
    this.clock = {
      missionTime: event.mission_time,
      at: event.t * 1000 - this.offset,
      paused: event.kind === "paused" || (this.clock ? this.clock.paused && event.kind !== "resumed" : false),
      ended: event.kind === "mission_ended",
    };
    $("paused").hidden = !this.clock.paused;
    switch (event.kind) {
      case "phase_started": {
        const phase = mission && mission.phases.find((p) => p.id === event.name);
        $("phase").textContent = phase ? phase.title : event.name;
        this.feed(`Phase: ${phase ? phase.title : event.name}`, "phase", event.mission_time);
        break;
      }
      case "inject":
        this.feed(event.text || event.name, event.priority === "routine" ? "" : event.priority, event.mission_time);
        break;
      case "objective_met": {
        const li = document.querySelector(`#objectives li[data-id="${CSS.escape(event.name)}"]`);
        if (li) li.classList.add("met");
        this.feed(`Objective met: ${li ? li.textContent : event.name}`, "phase", event.mission_time);
        break;
      }
      case "paused": this.feed("Mission paused", "control", event.mission_time); break;
      case "resumed": this.feed("Mission resumed", "control", event.mission_time); break;
      case "mission_started": this.feed("Mission started", "phase", event.mission_time); break;
      case "mission_ended":
        this.feed(`Mission ended${event.text ? ": " + event.text : ""}`, "phase", event.mission_time);
        $("phase").textContent = "Ended";
        break;
      default:
        if (event.text) this.feed(event.text, "", event.mission_time);
    }
  }

  tick() {
    const mission = this.welcome && this.welcome.mission;
    if (!this.clock) return;
    const speed = (this.welcome && this.welcome.speed) || 1;
    let t = this.clock.missionTime;
    if (!this.clock.paused && !this.clock.ended) t += ((Date.now() - this.clock.at) / 1000) * speed;
    if (mission) t = Math.min(t, mission.duration);
    const text = clockText(t);
    if (text === this.shownClock) return; // once a second: nothing to repaint in between
    this.shownClock = text;
    $("clock").textContent = text;
    if (mission && mission.duration > 0) $("progress-bar").style.width = pct(Math.min(1, t / mission.duration));
  }

  transcript(msg) {
    if (msg.typed) { // whole at once: no partials
      const li = node("li", "operator final typed");
      li.appendChild(node("span", "who", "Operator · typed"));
      li.appendChild(node("span", "text", msg.text));
      this.append(li);
      return;
    }
    const key = msg.turn;
    let li = this.partials.get(key);
    if (!li) {
      li = node("li", "operator partial");
      li.appendChild(node("span", "who", "Operator"));
      li.appendChild(node("span", "text"));
      this.append(li);
      this.partials.set(key, li);
    }
    li.querySelector(".text").textContent = msg.text;
    if (msg.final) {
      li.className = "operator final";
      li.querySelector(".who").textContent = `Operator · ${pct(msg.confidence || 0)}`;
      this.partials.delete(key);
    }
  }

  reply(turn, fields) {
    let entry = this.replies.get(turn);
    if (!entry) {
      const li = node("li", "twin");
      const who = node("span", "who", "Twin");
      who.appendChild(node("span", "meta"));
      li.appendChild(who);
      li.appendChild(node("span", "text"));
      this.append(li);
      entry = { li, sentences: [] };
      this.replies.set(turn, entry);
      while (this.replies.size > 80) this.replies.delete(this.replies.keys().next().value);
    }
    if (fields.intent !== undefined) {
      const meta = entry.li.querySelector(".meta");
      meta.textContent = `${fields.intent} · ${pct(fields.confidence)}`;
      if (fields.hedge) {
        meta.appendChild(node("span", "hedge", " · hedged"));
      }
    }
    if (fields.sentence !== undefined) {
      entry.sentences[fields.index] = fields.sentence;
      entry.li.querySelector(".text").textContent = entry.sentences.filter(Boolean).join(" ");
    }
    if (fields.cut) entry.li.classList.add("cut");
  }

  decision(msg) {
    this.reply(msg.turn, { intent: msg.intent, confidence: msg.confidence, hedge: msg.hedge });
  }

  utterance(msg) {
    const entry = this.replies.get(msg.turn);
    const known = entry && entry.li.querySelector(".meta").textContent;
    this.reply(msg.turn, { sentence: msg.text, index: msg.index,
      ...(known ? {} : { intent: msg.intent, confidence: msg.confidence }) });
  }

  cut(msg) {
    if (this.replies.has(msg.turn)) this.reply(msg.turn, { cut: true });
  }

  append(li) {
    const list = $("transcript");
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 24;
    list.appendChild(li);
    while (list.children.length > 200) list.firstChild.remove();
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  operatorState(msg) {
    $("emotion").textContent = msg.label;
    const trend = $("trend");
    trend.className = `trend ${msg.trend}`;
    trend.textContent = { improving: "▲ improving", worsening: "▼ worsening", steady: "● steady" }[msg.trend] || msg.trend;
    $("valence").textContent = num(msg.valence);
    $("arousal").textContent = num(msg.arousal);
    $("confidence").textContent = pct(msg.confidence);
    $("stress").textContent = num(msg.stress);
    $("engagement").textContent = num(msg.engagement);
    $("shift").textContent = msg.shift ? `shift: ${msg.shift}` : "";
    this.vaTrail.push([msg.valence, msg.arousal]);
    if (this.vaTrail.length > 12) this.vaTrail.shift();
    this.drawVA([msg.valence, msg.arousal]);
  }

  emotion(msg) {
    const box = $("modalities");
    box.innerHTML = "";
    for (const m of msg.modalities || []) {
      const row = node("div", m.available ? "row" : "row off");
      row.appendChild(node("span", "", m.modality));
      const track = node("div", "track");
      const fill = node("div", "fill");
      fill.style.width = pct(Math.max(0, Math.min(1, m.weight)));
      track.appendChild(fill);
      row.appendChild(track);
      const top = Object.entries(m.probabilities || {}).sort((a, b) => b[1] - a[1])[0];
      row.appendChild(node("span", "", m.available && top ? `${top[0]} ${pct(top[1])}` : "n/a"));
      row.title = `weight ${num(m.weight)}, confidence ${num(m.confidence)}${m.note ? ` (${m.note})` : ""}`;
      box.appendChild(row);
    }
    if (!$("emotion").textContent || $("emotion").textContent === "—") {
      $("emotion").textContent = msg.label;
      this.drawVA([msg.valence, msg.arousal]);
    }
  }

  drawVA(point) {
    const svg = $("va-plot");
    const ns = "http://www.w3.org/2000/svg";
    svg.innerHTML = "";
    const add = (name, attrs) => {
      const n = document.createElementNS(ns, name);
      for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
      svg.appendChild(n);
      return n;
    };
    add("rect", { x: 1, y: 1, width: 98, height: 98, rx: 6, fill: "#111820", stroke: "#243140" });
    add("line", { x1: 50, y1: 6, x2: 50, y2: 94, stroke: "#243140" });
    add("line", { x1: 6, y1: 50, x2: 94, y2: 50, stroke: "#243140" });
    for (const [text, x, y] of [["low", 8, 93], ["tense", 8, 13], ["alert", 70, 13], ["calm", 72, 93]]) {
      const t = add("text", { x, y, fill: "#56626f", "font-size": 8 });
      t.textContent = text;
    }
    const at = ([v, a]) => [50 + Math.max(-1, Math.min(1, v)) * 44, 50 - Math.max(-1, Math.min(1, a)) * 44];
    this.vaTrail.forEach((p, i) => {
      const [x, y] = at(p);
      add("circle", { cx: x, cy: y, r: 1.6, fill: "#6aa9d2", opacity: (0.15 + (0.5 * i) / this.vaTrail.length).toFixed(2) });
    });
    if (point) {
      const [x, y] = at(point);
      add("circle", { cx: x, cy: y, r: 4, fill: "#6aa9d2", stroke: "#d5dce4", "stroke-width": 1 });
    }
  }

  latency(frame) {
    const row = node("tr");
    const ms = (v) => (v === null || v === undefined ? "—" : `${Math.round(v)} ms`);
    row.appendChild(node("td", "", String(frame.turn)));
    for (const key of ["turn_end_ms", "transcript_ms", "decision_ms", "sentence_ms", "speech_ms"]) row.appendChild(node("td", "", ms(frame[key])));
    row.appendChild(node("td", "total", ms(frame.total_ms)));
    const body = $("latency");
    body.prepend(row);
    while (body.children.length > 6) body.lastChild.remove();
  }

  thumbnail(msg) {
    const img = $("thumb");
    img.src = `data:image/jpeg;base64,${msg.jpeg}`;
    img.hidden = false;
  }

  control(msg) {
    this.feed(`Trainer: ${msg.command.replace("_", " ")}${msg.argument ? " " + msg.argument : ""}`, "control");
  }

  actorError(msg) {
    this.feed(`${msg.actor}: ${msg.error}${msg.action && msg.action !== "none" ? ` (${msg.action})` : ""}`, "error");
  }
}
