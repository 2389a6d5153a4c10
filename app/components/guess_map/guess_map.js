// The guess map: renders a deck described with pydeck (deck.gl JSON) in the browser and
// keeps the pin, zoom and Guess button client-side, so placing and moving the pin never
// reaches the server. Only "guess" (the Guess button) and "timeout" (the round timer) do.
//
// deck.gl and @deck.gl/json are vendored under app/static/deckgl and served by the app.
// window.__geoaiMap exposes each map's view state and projection for tests and benchmarks.

const LIB = (window.__geoaiGuessMapLib = window.__geoaiGuessMapLib || {});
const PAGE = (window.__geoaiMap = window.__geoaiMap || { maps: {}, last: null });
const LIVE = (LIB.live = LIB.live || new Set());  // GuessMap instances with a deck
const LABELS_LAYER = "country-names";
const LABEL_CHAR_PX = 7.2;  // rough width of a 13 px label character, for decluttering
const PIN_HALO = [255, 255, 255, 255];
const PIN_EDGE = [20, 20, 20, 255];

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.async = false;
    script.onload = () => resolve();
    script.onerror = () => reject(new Error(`cannot load ${src}`));
    document.head.appendChild(script);
  });
}

// Both bundles are UMD builds that assign window.deck: load deck.gl, keep it, load the JSON
// module (which reads window.deck while loading and then replaces it), and put deck.gl back.
function loadDeck(urls) {
  if (!LIB.ready) {
    LIB.ready = (async () => {
      if (!(window.deck && window.deck.Deck)) await loadScript(urls.core);
      const core = window.deck;
      await loadScript(urls.json);
      const json = window.deck;
      window.deck = core;
      const classes = {};
      for (const [name, value] of Object.entries(core)) {
        if (typeof value === "function" && /(Layer|View|Extension)$/.test(name)) classes[name] = value;
      }
      return { core, converter: new json.JSONConverter({ configuration: { classes } }) };
    })();
    LIB.ready.catch(() => { LIB.ready = null; });  // a later render may retry
  }
  return LIB.ready;
}

function wrapLon(lon) {
  return ((((lon + 180) % 360) + 360) % 360) - 180;
}

function el(tag, className, parent, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

function rgb(colour) {
  const [r, g, b] = colour;
  return `rgb(${r}, ${g}, ${b})`;
}

function buildDom(parent, key) {
  const root = el("div", "gm-root", parent);
  root.dataset.key = key;
  root.__gm = {};
  const map = el("div", "gm-map", root);
  map.setAttribute("data-testid", "geoai-guess-map");
  const zoom = el("div", "gm-zoom", root);
  const zoomIn = el("button", "gm-zoom-in", zoom, "+");
  const zoomOut = el("button", "gm-zoom-out", zoom, "\u2212");
  zoomIn.type = zoomOut.type = "button";
  zoomIn.title = zoomIn.ariaLabel = "Zoom in";
  zoomOut.title = zoomOut.ariaLabel = "Zoom out";
  const timer = el("div", "gm-timer", root);
  timer.setAttribute("role", "timer");
  const legend = el("div", "gm-legend", root);
  legend.setAttribute("role", "list");
  legend.ariaLabel = "Legend";
  const bar = el("div", "gm-bar", root);
  const status = el("div", "gm-status", bar);
  status.setAttribute("aria-live", "polite");
  const guess = el("button", "gm-guess", bar, "Guess");
  guess.type = "button";
  guess.disabled = true;
  const message = el("div", "gm-message", root);
  return { root, map, zoomIn, zoomOut, legend, timer, bar, status, guess, message };
}

function pinLayers(core, pin, colour) {
  const data = pin ? [{ p: [pin.lon, pin.lat] }] : [];
  return [
    new core.ScatterplotLayer({
      id: "gm-pin-halo", data, getPosition: (d) => d.p, radiusUnits: "pixels", getRadius: 11,
      getFillColor: PIN_HALO, stroked: true, getLineColor: PIN_EDGE, lineWidthUnits: "pixels",
      getLineWidth: 1.5, updateTriggers: { getPosition: pin && [pin.lat, pin.lon] },
    }),
    new core.ScatterplotLayer({
      id: "gm-pin-dot", data, getPosition: (d) => d.p, radiusUnits: "pixels", getRadius: 6.5,
      getFillColor: colour, updateTriggers: { getPosition: pin && [pin.lat, pin.lon] },
    }),
  ];
}

function fittedView(core, fit, width, height, fallback) {
  if (!fit || !width || !height) return fallback;
  let [[west, south], [east, north]] = fit;
  if (east < west) east += 360;  // the area crosses the antimeridian
  const pad = Math.round(Math.min(width, height) * 0.08);
  try {
    const viewport = new core.WebMercatorViewport({ width, height });
    const { longitude, latitude, zoom } = viewport.fitBounds([[west, south], [east, north]], {
      padding: pad, maxZoom: fallback.maxZoom ?? 14,
    });
    return { ...fallback, longitude: wrapLon(longitude), latitude, zoom: Math.max(zoom, fallback.minZoom ?? 0) };
  } catch (err) {
    return fallback;
  }
}

function formatClock(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

class GuessMap {
  constructor(dom, key) {
    this.dom = dom;
    this.key = key;
    this.deck = null;
    this.deckId = null;
    this.pin = null;
    this.sent = false;
    this.clickAt = null;     // performance.now() clock: the pointer released on the map
    this.pinDrawnAt = null;  // the first frame drawn with the pin where it was clicked
    this.pinPending = false;
    this.guessAt = null;
    this.frames = 0;
    this.drawnAt = null;
    this.renders = 0;
    this.viewState = null;
    this.timerId = null;
    dom.map.addEventListener("pointerup", (e) => { this.lastPointerUp = e.timeStamp; }, true);
    dom.zoomIn.addEventListener("click", () => this.zoomBy(1));
    dom.zoomOut.addEventListener("click", () => this.zoomBy(-1));
    dom.guess.addEventListener("click", () => this.sendGuess());
    this.api = {
      key,
      ready: false,
      // The view as drawn (deck.gl may have clamped what the controller reported).
      viewState: () => {
        if (!this.deck || !this.deck.isInitialized) return this.viewState && { ...this.viewState };
        const { longitude, latitude, zoom, width, height } = this.viewport();
        return { longitude, latitude, zoom, width, height };
      },
      canvas: () => {
        const r = dom.map.getBoundingClientRect();
        return { left: r.left, top: r.top, width: r.width, height: r.height };
      },
      project: (lon, lat) => {
        const [x, y] = this.viewport().project([lon, lat]);
        const r = dom.map.getBoundingClientRect();
        return [x + r.left, y + r.top];
      },
      unproject: (x, y) => {
        const r = dom.map.getBoundingClientRect();
        const [lon, lat] = this.viewport().unproject([x - r.left, y - r.top]);
        return [wrapLon(lon), lat];
      },
      pin: () => this.pin && { ...this.pin },
      timings: () => ({ clickAt: this.clickAt, pinDrawnAt: this.pinDrawnAt, guessAt: this.guessAt,
        drawnAt: this.drawnAt }),
      frames: () => this.frames,
      renders: () => this.renders,
    };
    PAGE.maps[key] = this.api;
  }

  viewport() {
    return this.deck.getViewports()[0];
  }

  // A new WebGL context compiles every shader again (seconds in software rendering), so a
  // map takes over the deck of a map that has just left the page (round -> result -> round).
  adoptDeck() {
    for (const other of LIVE) {
      if (other !== this && other.deck && !other.dom.root.isConnected) {
        const deck = other.deck;
        other.deck = null;
        LIVE.delete(other);
        clearInterval(other.timerId);
        this.dom.map.appendChild(deck.getCanvas());
        return deck;
      }
    }
    return null;
  }

  // Country names that would overlap are dropped, the biggest countries kept (recomputed
  // as the zoom changes); cheaper than deck.gl's collision filter, which costs seconds of
  // shader work without a GPU.
  declutter() {
    const source = this.labelSource;
    if (!source || !this.deck || !this.deck.isInitialized) return;
    const viewport = this.viewport();
    const worldPx = 512 * 2 ** viewport.zoom;
    const boxes = [];
    const kept = [];
    for (const d of source.data) {
      let [x, y] = viewport.project(d.p);
      x -= Math.round((x - viewport.width / 2) / worldPx) * worldPx;  // the nearest world copy
      if (x < -100 || x > viewport.width + 100 || y < -20 || y > viewport.height + 20) continue;
      const half = (d.n.length * LABEL_CHAR_PX) / 2 + 4;
      const box = [x - half, y - 10, x + half, y + 10];
      if (boxes.some((b) => box[0] < b[2] && b[0] < box[2] && box[1] < b[3] && b[1] < box[3])) continue;
      boxes.push(box);
      kept.push(d);
    }
    this.labelsLayer = source.layer.clone({ data: kept });
    this.labelsZoom = viewport.zoom;
    this.labelsCentre = [viewport.longitude, viewport.latitude];
    this.deck.setProps({ layers: this.layers() });
  }

  maybeDeclutter() {
    if (!this.labelSource || this.declutterQueued) return;
    const vs = this.viewState;
    const moved = this.labelsCentre
      && Math.hypot(vs.longitude - this.labelsCentre[0], vs.latitude - this.labelsCentre[1]) * 2 ** vs.zoom > 90;
    if (Math.abs(vs.zoom - (this.labelsZoom ?? -9)) < 0.25 && !moved) return;
    this.declutterQueued = true;
    requestAnimationFrame(() => { this.declutterQueued = false; this.declutter(); });
  }

  update(lib, data, setTriggerValue) {
    this.renders += 1;
    this.setTriggerValue = setTriggerValue;
    this.data = data;
    const { core, converter } = lib;
    this.core = core;
    this.pinColour = data.pin_colour || [230, 80, 30, 255];
    if (this.deckId === data.id && this.sent && !this.expired) this.sent = false;
    if (this.deckId !== data.id) {
      const spec = converter.convert(JSON.parse(data.deck));
      this.baseLayers = (spec.layers || []).filter(Boolean);
      const labels = this.baseLayers.find((layer) => layer.id === LABELS_LAYER);
      this.labelSource = labels && Array.isArray(labels.props.data)
        ? { layer: labels, data: [...labels.props.data].sort((a, b) => (b.r || 0) - (a.r || 0)) } : null;
      this.labelsLayer = labels ? labels.clone({ data: [] }) : null;
      this.labelsZoom = null;
      const rect = this.dom.map.getBoundingClientRect();
      const initial = { minZoom: 0, maxZoom: 14, ...(spec.initialViewState || {}) };
      this.viewState = fittedView(core, data.fit, rect.width, rect.height, initial);
      this.deckId = data.id;
      this.drawnAt = null;  // the first frame of this deck
      this.pin = null;
      this.sent = false;
      const props = {
        views: spec.views,
        initialViewState: this.viewState,
        layers: this.layers(),
        controller: data.interactive
          ? { doubleClickZoom: false, dragRotate: false, touchRotate: false, keyboard: true, scrollZoom: true }
          : { doubleClickZoom: false, dragRotate: false, touchRotate: false, scrollZoom: true },
        getCursor: ({ isDragging }) => (isDragging ? "grabbing" : data.interactive ? "crosshair" : "grab"),
        onViewStateChange: ({ viewState }) => { this.viewState = viewState; this.maybeDeclutter(); },
        onClick: (info) => this.onClick(info),
        onAfterRender: () => this.afterRender(),
        useDevicePixels: true,
      };
      if (!this.deck) this.deck = this.adoptDeck();
      if (!this.deck) {
        this.deck = new core.Deck({ ...props, parent: this.dom.map, width: "100%", height: "100%" });
      } else {
        this.deck.setProps(props);
      }
      LIVE.add(this);
    }
    this.renderLegend(data.legend || []);
    this.dom.guess.textContent = data.button_label || "Guess";
    this.dom.bar.style.display = data.interactive ? "" : "none";
    this.dom.root.classList.toggle("gm-view-only", !data.interactive);
    this.startTimer(data);
    this.refreshControls();
    this.api.ready = true;
    PAGE.last = this.api;
  }

  layers() {
    let base = this.baseLayers.map((layer) => (layer.id === LABELS_LAYER && this.labelsLayer ? this.labelsLayer : layer));
    if (this.data.tiles) base = [this.tileLayer(this.data.tiles), ...base];
    if (!this.data.interactive) return base;
    return [...base, ...pinLayers(this.core, this.pin, this.pinColour)];
  }

  tileLayer(url) {
    const { core } = this;
    return new core.TileLayer({
      id: "gm-tiles", data: url, minZoom: 0, maxZoom: 19, tileSize: 256,
      renderSubLayers: (props) => {
        const [[west, south], [east, north]] = props.tile.boundingBox;
        return new core.BitmapLayer(props, { data: null, image: props.data, bounds: [west, south, east, north] });
      },
    });
  }

  onClick(info) {
    if (!this.data.interactive || this.sent || this.expired || !info.coordinate) return;
    const [lon, lat] = info.coordinate;
    this.pin = { lat: Math.max(-85.05113, Math.min(85.05113, lat)), lon: wrapLon(lon) };
    this.clickAt = this.lastPointerUp ?? performance.now();
    this.pinDrawnAt = null;
    this.pinPending = true;
    this.deck.setProps({ layers: this.layers() });
    this.refreshControls();
  }

  afterRender() {
    this.frames += 1;
    if (this.drawnAt === null) this.drawnAt = performance.now();
    if (this.labelSource && this.labelsZoom === null && !this.declutterQueued) {
      this.declutterQueued = true;  // the first frame knows the real canvas size
      requestAnimationFrame(() => { this.declutterQueued = false; this.declutter(); });
    }
    if (this.pinPending) {
      this.pinPending = false;
      this.pinDrawnAt = performance.now();
    }
  }

  zoomBy(step) {
    if (!this.deck || !this.viewState) return;
    const vs = this.viewState;
    const zoom = Math.max(vs.minZoom ?? 0, Math.min(vs.maxZoom ?? 14, vs.zoom + step));
    this.viewState = { ...vs, zoom, transitionDuration: 180 };
    this.deck.setProps({ initialViewState: this.viewState });
  }

  refreshControls() {
    const { status, guess } = this.dom;
    if (!this.data.interactive) return;
    guess.disabled = !this.pin || this.sent || this.expired;
    if (this.expired) status.textContent = "Time is up.";
    else if (this.sent) status.textContent = "Sending your guess\u2026";
    else if (this.pin) status.textContent = `Your guess: ${this.pin.lat.toFixed(4)}, ${this.pin.lon.toFixed(4)}. Click again to move it.`;
    else status.textContent = "Click the map to place your guess.";
  }

  sendGuess() {
    if (!this.pin || this.sent || this.expired) return;
    this.sent = true;
    this.guessAt = PAGE.lastGuessAt = performance.now();
    this.refreshControls();
    this.setTriggerValue("guess", { lat: this.pin.lat, lon: this.pin.lon, round: this.data.id });
  }

  startTimer(data) {
    const { timer } = this.dom;
    if (this.timerFor === data.id) return;  // one countdown per round
    this.timerFor = data.id;
    clearInterval(this.timerId);
    this.expired = false;
    if (!data.interactive || data.timer_s == null) {
      timer.style.display = "none";
      return;
    }
    const deadline = performance.now() + data.timer_s * 1000;
    timer.style.display = "";
    const tick = () => {
      const left = (deadline - performance.now()) / 1000;
      timer.textContent = formatClock(left);
      timer.classList.toggle("gm-timer-low", left <= 10);
      if (left <= 0 && !this.expired) {
        clearInterval(this.timerId);
        this.expired = true;
        this.refreshControls();
        if (!this.sent) {
          this.sent = true;
          const pin = this.pin ? { lat: this.pin.lat, lon: this.pin.lon } : {};
          this.setTriggerValue("timeout", { round: data.id, ...pin });
        }
      }
    };
    tick();
    this.timerId = setInterval(tick, 250);
  }

  renderLegend(entries) {
    const { legend } = this.dom;
    const signature = JSON.stringify(entries);
    if (legend.dataset.signature === signature) return;
    legend.dataset.signature = signature;
    legend.replaceChildren();
    legend.style.display = entries.length ? "" : "none";
    for (const entry of entries) {
      const row = el("div", "gm-legend-row", legend);
      row.setAttribute("role", "listitem");
      const swatch = el("span", `gm-swatch gm-swatch-${entry.shape || "dot"}`, row);
      swatch.style.background = rgb(entry.colour);
      el("span", "gm-legend-label", row, entry.label);
    }
  }

  destroy() {
    clearInterval(this.timerId);
    LIVE.delete(this);
    if (this.deck) this.deck.finalize();
    this.deck = null;
    if (PAGE.maps[this.key] === this.api) delete PAGE.maps[this.key];
  }
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const key = (data && data.key) || component.key;
  let root = parentElement.querySelector(":scope > .gm-root");
  if (root && root.__gm.key !== key) {  // Streamlit reused the element for another map
    root.__gm.destroy();
    root.remove();
    root = null;
  }
  if (!root) {
    const dom = buildDom(parentElement, key);
    root = dom.root;
    root.__gm = new GuessMap(dom, key);
  }
  const map = root.__gm;
  // The map keeps one size whatever the status line says: a click must never move it.
  map.dom.map.style.height = `${data.map_height}px`;
  loadDeck(data.lib)
    .then((lib) => {
      map.dom.message.textContent = "";
      map.update(lib, data, setTriggerValue);
    })
    .catch((err) => {
      map.dom.message.textContent = `The map could not load (${err.message}). Reload the page; `
        + "if it persists, start the game with `make play` (it serves the map's scripts).";
    });
  return () => {
    // Streamlit calls this when the element leaves the page; a re-render keeps the deck.
    setTimeout(() => { if (!root.isConnected) map.destroy(); }, 0);
  };
}
