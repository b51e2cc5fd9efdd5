// The twin's face, drawn in SVG: a head-and-shoulders portrait whose mouth is driven by ARKit
// blendshape weights (jawOpen, mouthFunnel, mouthPucker, mouthSmile*, mouthStretch*, ...),
// whose eyes blink and shift gaze on their own, and whose brows and mouth corners show an
// expression (calm, positive, concerned, urgent). `render(weights, now)` is called every frame.

const NS = "http://www.w3.org/2000/svg";

const EXPRESSIONS = {
  calm: { smile: 0.12, frown: 0, browUp: 0, browDown: 0, wide: 0, squint: 0.05 },
  neutral: { smile: 0.05, frown: 0, browUp: 0, browDown: 0, wide: 0, squint: 0 },
  positive: { smile: 0.42, frown: 0, browUp: 0.12, browDown: 0, wide: 0, squint: 0.25 },
  concerned: { smile: 0, frown: 0.28, browUp: 0.6, browDown: 0.1, wide: 0.05, squint: 0 },
  urgent: { smile: 0, frown: 0.12, browUp: 0, browDown: 0.55, wide: 0.25, squint: 0 },
};

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (parent) parent.appendChild(node);
  return node;
}

function gradient(defs, id, stops, attrs = {}, kind = "radialGradient") {
  const g = el(kind, { id, ...attrs }, defs);
  for (const [offset, color, opacity] of stops) {
    el("stop", { offset, "stop-color": color, "stop-opacity": opacity ?? 1 }, g);
  }
  return g;
}

const f = (n) => n.toFixed(1);

// Set an attribute only when its value changes: an unchanged face repaints nothing.
const last = new WeakMap();
function set(node, name, value) {
  let values = last.get(node);
  if (!values) last.set(node, (values = {}));
  const text = String(value);
  if (values[name] !== text) {
    values[name] = text;
    node.setAttribute(name, text);
  }
}
const mix = (a, b, k) => a + (b - a) * k;
const clamp01 = (x) => Math.max(0, Math.min(1, x));

export class Face {
  // `box`: an element the face fills; three stacked SVG layers are made in it (backdrop, torso,
  // head) so that breathing and head sway are CSS transforms the compositor applies, and a
  // frame repaints only the parts that changed (eyes, brows, mouth).
  constructor(box) {
    this.box = box;
    this.expressionName = "calm";
    this.expr = { ...EXPRESSIONS.calm };
    this.mouth = { jaw: 0, gap: 0, width: 30, smile: 0, round: 0 };
    this.gaze = { x: 0, y: 0, tx: 0, ty: 0, next: 0 };
    this.blink = { start: -1, next: performance.now() + 1800 };
    this.last = performance.now();
    this.speaking = 0;
    this.build();
  }

  setExpression(name) {
    this.expressionName = EXPRESSIONS[name] ? name : "calm";
  }

  build() {
    this.box.innerHTML = "";
    // A layer draws the region x, y, w, h of the 400 x 460 drawing, placed where it belongs
    const layer = (name, x = 0, y = 0, w = 400, h = 460) => {
      const svg = el("svg", { viewBox: `${x} ${y} ${w} ${h}`, class: `face-layer ${name}`, "aria-hidden": "true" });
      Object.assign(svg.style, { left: `${(x / 4).toFixed(3)}%`, top: `${((y / 460) * 100).toFixed(3)}%`,
        width: `${(w / 4).toFixed(3)}%`, height: `${((h / 460) * 100).toFixed(3)}%` });
      this.box.appendChild(svg);
      return svg;
    };
    const svg = layer("backdrop");
    const defs = el("defs", {}, svg);
    gradient(defs, "bg-glow", [["0%", "#2a3a4a", 0.55], ["70%", "#1a2530", 0.15], ["100%", "#0e1319", 0]]);
    // In drawing units, so that the eyelids take exactly the colour of the skin around them
    gradient(defs, "skin", [["0%", "#f0cfb4"], ["55%", "#e2b596"], ["100%", "#c48f70"]],
      { cx: 192, cy: 178, r: 170, gradientUnits: "userSpaceOnUse" });
    gradient(defs, "neck", [["0%", "#b98468"], ["100%", "#d4a486"]],
      { x1: "0", y1: "0", x2: "0", y2: "1" }, "linearGradient");
    gradient(defs, "jacket", [["0%", "#34475a"], ["100%", "#1f2c38"]],
      { x1: "0", y1: "0", x2: "0", y2: "1" }, "linearGradient");
    gradient(defs, "hair", [["0%", "#4a3c34"], ["100%", "#2c231f"]],
      { x1: "0", y1: "0", x2: "0", y2: "1" }, "linearGradient");
    gradient(defs, "iris", [["0%", "#6f8ea5"], ["70%", "#46637a"], ["100%", "#2c4154"]]);
    gradient(defs, "cheek", [["0%", "#d9826f", 0.22], ["100%", "#d9826f", 0]]);
    const eyeClipL = el("clipPath", { id: "eye-clip-l" }, defs);
    const eyeClipR = el("clipPath", { id: "eye-clip-r" }, defs);
    const mouthClip = el("clipPath", { id: "mouth-clip" }, defs);
    const eyeShape = "M -19 0 C -12 -10.5, 10 -11.5, 19 -1 C 11 7.5, -11 8, -19 0 Z";
    el("path", { d: eyeShape, transform: "translate(165 190)" }, eyeClipL);
    el("path", { d: eyeShape, transform: "translate(235 190) scale(-1 1)" }, eyeClipR);
    this.mouthClipPath = el("path", { d: "" }, mouthClip);

    el("circle", { cx: 200, cy: 210, r: 195, fill: "url(#bg-glow)" }, svg);

    // Torso (breathes) -------------------------------------------------------------------
    this.torso = el("g", {}, svg);
    el("path", { d: "M 177 296 L 175 362 Q 200 378 225 362 L 223 296 Z", fill: "url(#neck)" }, this.torso);
    el("ellipse", { cx: 200, cy: 318, rx: 30, ry: 16, fill: "#8f5d46", opacity: 0.35 }, this.torso);
    el("path", { d: "M 34 462 C 40 398, 94 370, 156 356 L 200 394 L 244 356 C 306 370, 360 398, 366 462 Z",
      fill: "url(#jacket)" }, this.torso);
    el("path", { d: "M 162 352 L 200 394 L 238 352 L 228 346 L 200 378 L 172 346 Z", fill: "#d6dde5" }, this.torso);
    el("path", { d: "M 156 356 L 200 394 L 180 450 L 140 370 Z", fill: "#2b3b4b" }, this.torso);
    el("path", { d: "M 244 356 L 200 394 L 220 450 L 260 370 Z", fill: "#2b3b4b" }, this.torso);
    el("rect", { x: 258, y: 404, width: 38, height: 9, rx: 2, fill: "#6aa9d2", opacity: 0.75 }, this.torso);
    el("path", { d: "M 104 388 C 122 380, 140 374, 152 370", stroke: "#3e5366", "stroke-width": 2, fill: "none", opacity: 0.6 }, this.torso);
    el("path", { d: "M 296 388 C 278 380, 260 374, 248 370", stroke: "#3e5366", "stroke-width": 2, fill: "none", opacity: 0.6 }, this.torso);

    // Head (sways, follows gaze a little) --------------------------------------------------
    // The head moves as one (a CSS transform on its box); the mouth, the only part that changes
    // every frame while speaking, is a small layer of its own inside it.
    this.headLayer = document.createElement("div");
    this.headLayer.className = "face-layer head";
    Object.assign(this.headLayer.style, { left: "24.5%", top: `${(52 / 4.6).toFixed(3)}%`,
      width: "51%", height: `${(286 / 4.6).toFixed(3)}%` });
    this.box.appendChild(this.headLayer);
    const sub = (name, x, y, w, h) => {
      const svg = el("svg", { viewBox: `${x} ${y} ${w} ${h}`, class: `face-part ${name}`, "aria-hidden": "true" });
      Object.assign(svg.style, { left: `${(((x - 98) / 204) * 100).toFixed(3)}%`, top: `${(((y - 52) / 286) * 100).toFixed(3)}%`,
        width: `${((w / 204) * 100).toFixed(3)}%`, height: `${((h / 286) * 100).toFixed(3)}%` });
      this.headLayer.appendChild(svg);
      return svg;
    };
    const head = el("g", {}, sub("base", 98, 52, 204, 286));
    el("ellipse", { cx: 117, cy: 204, rx: 11, ry: 21, fill: "#d9a98a" }, head);
    el("ellipse", { cx: 283, cy: 204, rx: 11, ry: 21, fill: "#d9a98a" }, head);
    el("path", { d: "M 120 206 q 5 -10 2 -16", stroke: "#b98468", "stroke-width": 1.5, fill: "none" }, head);
    el("path", { d: "M 280 206 q -5 -10 -2 -16", stroke: "#b98468", "stroke-width": 1.5, fill: "none" }, head);
    this.skin = el("path", { fill: "url(#skin)" }, head);
    el("ellipse", { cx: 150, cy: 238, rx: 24, ry: 14, fill: "url(#cheek)" }, head);
    el("ellipse", { cx: 250, cy: 238, rx: 24, ry: 14, fill: "url(#cheek)" }, head);
    el("path", { d: "M 117 182 C 106 104, 148 58, 204 58 C 262 60, 296 104, 284 182 C 279 156, 273 134, 262 121 C 236 128, 196 114, 170 108 C 150 116, 128 136, 121 182 Z",
      fill: "url(#hair)" }, head);
    el("path", { d: "M 170 108 C 190 98, 222 100, 262 121", stroke: "#54443a", "stroke-width": 1.5, fill: "none", opacity: 0.7 }, head);
    el("path", { d: "M 118 174 C 119 184, 120 191, 122 198 L 125 197 C 124 190, 124 182, 125 173 Z", fill: "#3a2f29", opacity: 0.8 }, head);
    el("path", { d: "M 282 174 C 281 184, 280 191, 278 198 L 275 197 C 276 190, 276 182, 275 173 Z", fill: "#3a2f29", opacity: 0.8 }, head);

    // Brows
    this.browL = el("path", { stroke: "#4b3a31", "stroke-width": 5.5, "stroke-linecap": "round", fill: "none" }, head);
    this.browR = el("path", { stroke: "#4b3a31", "stroke-width": 5.5, "stroke-linecap": "round", fill: "none" }, head);

    // Eyes
    this.eyes = [];
    for (const [cx, clip, mirror] of [[165, "eye-clip-l", 1], [235, "eye-clip-r", -1]]) {
      const group = el("g", { "clip-path": `url(#${clip})` }, head);
      el("rect", { x: cx - 22, y: 174, width: 44, height: 30, fill: "#f2eee8" }, group);
      const iris = el("g", {}, group);
      el("circle", { cx, cy: 190, r: 7.6, fill: "url(#iris)", stroke: "#2a3a48", "stroke-width": 1 }, iris);
      el("circle", { cx, cy: 190, r: 3.3, fill: "#161b20" }, iris);
      el("circle", { cx: cx - 2.4, cy: 187.4, r: 1.5, fill: "#ffffff", opacity: 0.85 }, iris);
      const lid = el("path", { fill: "url(#skin)" }, group);
      const lash = el("path", { stroke: "#3a2d27", "stroke-width": 1.8, fill: "none", "stroke-linecap": "round" }, head);
      el("path", { d: `M ${cx - 17 * mirror} 183 Q ${cx} 171 ${cx + 18 * mirror} 183`, stroke: "#b98468",
        "stroke-width": 1.1, fill: "none", opacity: 0.55 }, head);
      this.eyes.push({ cx, mirror, iris, lid, lash });
    }

    // Nose
    el("path", { d: "M 205 198 C 207 212, 209 224, 212 234", stroke: "#c08a70", "stroke-width": 2.2,
      fill: "none", "stroke-linecap": "round", opacity: 0.18 }, head);
    el("path", { d: "M 187 239 C 191 248, 209 248, 213 239", stroke: "#b07a62", "stroke-width": 1.7,
      fill: "none", "stroke-linecap": "round", opacity: 0.8 }, head);
    el("ellipse", { cx: 192, cy: 244, rx: 3.4, ry: 1.8, fill: "#9e6a55", opacity: 0.55 }, head);
    el("ellipse", { cx: 208, cy: 244, rx: 3.4, ry: 1.8, fill: "#9e6a55", opacity: 0.55 }, head);
    el("path", { d: "M 196 252 Q 200 258 204 252", stroke: "#c48f74", "stroke-width": 1.2, fill: "none", opacity: 0.6 }, head);

    // Mouth: opening (clipped teeth and tongue), lips
    this.mouthGroup = el("g", {}, sub("mouth", 150, 236, 100, 100));
    this.opening = el("path", { fill: "#4a2326" }, this.mouthGroup);
    const inside = el("g", { "clip-path": "url(#mouth-clip)" }, this.mouthGroup);
    this.teethTop = el("rect", { fill: "#efebe4", rx: 2 }, inside);
    this.teethBottom = el("rect", { fill: "#e4dfd6", rx: 2 }, inside);
    this.tongue = el("ellipse", { fill: "#b9575f" }, inside);
    this.lipUpper = el("path", { fill: "#b46f61" }, this.mouthGroup);
    this.lipLower = el("path", { fill: "#c17b6c" }, this.mouthGroup);
    this.lipLine = el("path", { stroke: "#7c3f3a", "stroke-width": 1.3, fill: "none", "stroke-linecap": "round" }, this.mouthGroup);
    this.chinShadow = el("path", { stroke: "#c79277", "stroke-width": 1.4, fill: "none", opacity: 0.5 }, this.mouthGroup);
    this.drawSkin(0);
  }

  // Called every animation frame with the current viseme weights (ARKit names).
  render(weights, now = performance.now()) {
    const dt = Math.min(0.1, Math.max(0, (now - this.last) / 1000));
    this.last = now;
    const target = EXPRESSIONS[this.expressionName];
    const ke = 1 - Math.exp(-dt / 0.35);
    for (const key of Object.keys(this.expr)) this.expr[key] = mix(this.expr[key], target[key], ke);
    const w = (name) => weights[name] || 0;
    const talking = Object.keys(weights).length > 0 ? 1 : 0;
    this.speaking = mix(this.speaking, talking, 1 - Math.exp(-dt / 0.3));

    // Mouth shape from the blendshapes (see actors/visemes.py for the per-viseme weights)
    const jaw = w("jawOpen");
    const close = w("mouthClose") + 0.5 * (w("mouthPressLeft") + w("mouthPressRight"));
    const stretch = (w("mouthStretchLeft") + w("mouthStretchRight")) / 2;
    const vSmile = (w("mouthSmileLeft") + w("mouthSmileRight")) / 2;
    const funnel = w("mouthFunnel");
    const pucker = w("mouthPucker");
    const rollLower = w("mouthRollLower");
    const upperUp = (w("mouthUpperUpLeft") + w("mouthUpperUpRight")) / 2;
    const lowerDown = (w("mouthLowerDownLeft") + w("mouthLowerDownRight")) / 2;
    const tongueOut = w("tongueOut");
    const smile = Math.max(vSmile, this.expr.smile * (1 - 0.6 * jaw));
    const frown = this.expr.frown * (1 - talking * 0.5);
    const target2 = {
      gap: Math.max(0, 30 * jaw + 7 * lowerDown + 5 * rollLower - 16 * close),
      width: 31 * (1 + 0.26 * stretch + 0.2 * smile - 0.4 * pucker - 0.18 * funnel),
      round: clamp01(funnel + 0.6 * pucker),
      jaw,
      tongue: tongueOut,
      roll: rollLower,
      upperUp,
    };
    // A short time constant: co-articulation without lagging the audio
    const km = 1 - Math.exp(-dt / 0.028);
    for (const key of Object.keys(target2)) this.mouth[key] = mix(this.mouth[key] ?? 0, target2[key], km);
    this.mouth.smile = mix(this.mouth.smile, smile, km);
    this.drawMouth(this.mouth, frown);
    this.drawChin(this.mouth.jaw);
    this.drawBrows();
    this.drawEyes(now, dt);
    this.drawPose(now);
  }

  drawSkin(jaw) {
    const d = jaw * 0;
    set(this.skin, "d",
      `M 200 68 C 252 68, 283 106, 283 172 C 283 228, 277 266, 259 293 ` +
      `C 244 315, 224 ${f(327 + d)}, 200 ${f(329 + d)} C 176 ${f(327 + d)}, 156 315, 141 293 ` +
      `C 123 266, 117 228, 117 172 C 117 106, 148 68, 200 68 Z`);
  }

  drawChin(jaw) {
    const d = jaw * 9;
    set(this.chinShadow, "d", `M 186 ${f(309 + d)} Q 200 ${f(314 + d)} 214 ${f(309 + d)}`);
  }

  drawMouth(m, frown) {
    const cx = 200, cy = 276;
    const W = m.width;
    const corner = cy - 4.5 * m.smile + 3.5 * frown;
    const upperIn = cy - m.gap * 0.22 - m.upperUp * 2.5;
    const lowerIn = cy + m.gap * 0.78;
    const k = 0.55 + 0.3 * m.round;
    const Tu = 5.6 + 2 * m.round;
    const Tl = Math.max(3, 7.2 + 2.4 * m.round - 3.2 * m.roll);
    const L = `${f(cx - W)} ${f(corner)}`, R = `${f(cx + W)} ${f(corner)}`;
    const inUpper = `C ${f(cx - W * k)} ${f(upperIn)}, ${f(cx + W * k)} ${f(upperIn)}, ${R}`;
    const inUpperBack = `C ${f(cx + W * k)} ${f(upperIn)}, ${f(cx - W * k)} ${f(upperIn)}, ${L}`;
    const inLower = `C ${f(cx + W * k)} ${f(lowerIn)}, ${f(cx - W * k)} ${f(lowerIn)}, ${L}`;
    const inLowerBack = `C ${f(cx - W * k)} ${f(lowerIn)}, ${f(cx + W * k)} ${f(lowerIn)}, ${R}`;
    const opening = `M ${L} ${inUpper} ${inLower} Z`;
    set(this.opening, "d", opening);
    set(this.mouthClipPath, "d", opening);
    const top = upperIn - Tu;
    set(this.lipUpper, "d",
      `M ${L} C ${f(cx - W * 0.72)} ${f(top + 2.5)}, ${f(cx - W * 0.3)} ${f(top - 2.2)}, ${cx} ${f(top + 1.2)} ` +
      `C ${f(cx + W * 0.3)} ${f(top - 2.2)}, ${f(cx + W * 0.72)} ${f(top + 2.5)}, ${R} ${inUpperBack} Z`);
    set(this.lipLower, "d",
      `M ${R} ${inLower} C ${f(cx - W * 0.62)} ${f(lowerIn + Tl * 1.45)}, ${f(cx + W * 0.62)} ${f(lowerIn + Tl * 1.45)}, ${R} Z`);
    set(this.lipLine, "d", m.gap < 1.2 ? `M ${L} ${inUpper}` : "M 0 0");
    const teethH = Math.min(8, m.gap * 0.42 + 1.5);
    set(this.teethTop, "x", f(cx - W * 0.78));
    set(this.teethTop, "y", f(upperIn - 3));
    set(this.teethTop, "width", f(W * 1.56));
    set(this.teethTop, "height", f(teethH + 3));
    const lowH = m.gap > 9 ? Math.min(4, (m.gap - 9) * 0.4) : 0;
    set(this.teethBottom, "x", f(cx - W * 0.6));
    set(this.teethBottom, "y", f(lowerIn - lowH));
    set(this.teethBottom, "width", f(W * 1.2));
    set(this.teethBottom, "height", f(lowH + 2));
    const tongueY = mix(lowerIn - 2, (upperIn + lowerIn) / 2 + 1, clamp01(m.tongue * 1.6));
    set(this.tongue, "cx", cx);
    set(this.tongue, "cy", f(tongueY));
    set(this.tongue, "rx", f(W * 0.52));
    set(this.tongue, "ry", f(Math.min(7, 2 + m.gap * 0.25)));
  }

  drawBrows() {
    const e = this.expr;
    for (const [path, mirror, x0] of [[this.browL, 1, 146], [this.browR, -1, 254]]) {
      const inner = x0 + 40 * mirror, mid = x0 + 19 * mirror;
      const lift = -3 * this.speaking * 0.4;
      const yOuter = 164 + 2 * e.browDown - 2 * e.browUp + lift;
      const yMid = 156 + 3 * e.browDown - 4 * e.browUp + lift;
      const yInner = 160 + 5 * e.browDown - 8 * e.browUp + lift;
      const xInner = inner - 2 * e.browDown * mirror;
      set(path, "d", `M ${x0} ${f(yOuter)} Q ${mid} ${f(yMid - 4)} ${f(xInner)} ${f(yInner)}`);
    }
  }

  drawEyes(now, dt) {
    // Blinks: every 2.5-6 s, sometimes twice
    const b = this.blink;
    if (b.start < 0 && now >= b.next) b.start = now;
    let closed = 0;
    if (b.start >= 0) {
      const p = (now - b.start) / 170;
      if (p >= 1) {
        b.start = -1;
        b.next = now + (Math.random() < 0.15 ? 220 : 2500 + Math.random() * 3500);
      } else closed = Math.sin(Math.PI * p);
    }
    // Gaze: mostly at the viewer, now and then a glance away, quick saccades
    const g = this.gaze;
    if (now >= g.next) {
      const away = Math.random() < (this.speaking > 0.5 ? 0.15 : 0.35);
      g.tx = away ? (Math.random() - 0.5) * 1.2 : (Math.random() - 0.5) * 0.25;
      g.ty = away ? (Math.random() - 0.5) * 0.6 : (Math.random() - 0.5) * 0.15;
      g.next = now + 1200 + Math.random() * 2800;
    }
    const ks = 1 - Math.exp(-dt / 0.045);
    g.x = mix(g.x, g.tx, ks);
    g.y = mix(g.y, g.ty, ks);
    const e = this.expr;
    const rest = 0.1 + e.squint * 0.35 - e.wide * 0.4;
    const lid = clamp01(rest + (1 - rest) * closed + Math.max(0, g.y) * 0.15);
    for (const eye of this.eyes) {
      set(eye.iris, "transform", `translate(${f(g.x * 7)} ${f(g.y * 4)})`);
      const d = lid * 20;
      const m = eye.mirror, cx = eye.cx;
      const y0 = f(189 + d * 0.9), c1 = f(179.5 + d), c2 = f(178.5 + d);
      const edge = `M ${cx - 20 * m} ${y0} C ${cx - 12 * m} ${c1}, ${cx + 10 * m} ${c2}, ${cx + 20 * m} ${y0}`;
      set(eye.lid, "d", `M ${cx - 24 * m} 166 L ${cx + 24 * m} 166 L ${cx + 20 * m} ${y0} ` +
        `C ${cx + 10 * m} ${c2}, ${cx - 12 * m} ${c1}, ${cx - 20 * m} ${y0} Z`);
      set(eye.lash, "d", edge);
    }
  }

  drawPose(now) {
    // The head turns a little toward where the eyes look and nods slightly while speaking; it
    // is otherwise still (a moving head repaints the whole layer in software rendering).
    const t = now / 1000;
    const nod = this.speaking * 0.8 * Math.sin(t * 2.3);
    const unit = this.box.clientWidth / 400 || 1;
    const q = (n) => (Math.round(n * 4) / 4).toFixed(2); // quarter pixels: no change, no repaint
    const transform = `translate(${q(this.gaze.x * 2.2 * unit)}px, ${q(nod * unit)}px) rotate(${q(this.gaze.x * 1.2)}deg)`;
    if (transform !== this.pose) {
      this.pose = transform;
      this.headLayer.style.transform = transform;
    }
  }

  // Current drawn mouth opening (for the test hook): gap in SVG units and half-width
  shape() {
    return { gap: this.mouth.gap, width: this.mouth.width, round: this.mouth.round };
  }
}
