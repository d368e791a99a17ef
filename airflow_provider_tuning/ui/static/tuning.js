// Tuning view pages: the job list, the job page (one or several jobs overlaid) and the
// task-instance tab. Plain DOM, text set with textContent (names come from the API).
(function () {
  "use strict";
  const PAGE = document.body.dataset.page;
  const BASE = location.pathname.replace(/\/tuning(\/.*)?$/, "");
  const API = BASE + "/tuning/api";
  const PARAMS = new URLSearchParams(location.search);
  const REFRESH_MS = 5000;

  // --- look like the Airflow UI around us: its dark mode, live -----------------------------
  function followTheme() {
    let dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    try {
      const top = window.parent.document.documentElement;
      if (window.parent !== window) {
        dark = top.classList.contains("dark") || top.style.colorScheme === "dark";
        if (!followTheme.watching) {
          new MutationObserver(followTheme).observe(top, { attributes: true, attributeFilter: ["class", "style"] });
          followTheme.watching = true;
        }
      }
    } catch (e) { /* not same-origin: keep the system preference */ }
    document.documentElement.classList.toggle("dark", !!dark);
  }
  followTheme();

  // --- helpers --------------------------------------------------------------------------------
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const key in props || {}) {
      if (key === "class") node.className = props[key];
      else if (key === "text") node.textContent = props[key];
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), props[key]);
      else if (props[key] !== undefined && props[key] !== null) node.setAttribute(key, props[key]);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  async function getJson(path, params) {
    const url = API + path + (params ? "?" + new URLSearchParams(params) : "");
    let answer;
    try {
      answer = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    } catch (e) {
      throw new Error("The Airflow api-server did not answer: " + e.message);
    }
    let body = null;
    try { body = await answer.json(); } catch (e) { /* not JSON */ }
    if (!answer.ok) {
      let detail = body && body.detail;
      if (Array.isArray(detail)) detail = detail.map((d) => (d.loc || []).join(".") + ": " + d.msg).join("; ");
      if (answer.status === 401) detail = "You are not logged in to Airflow (or your session expired): reload the page.";
      throw new Error(detail || answer.status + " " + answer.statusText);
    }
    return body;
  }

  function when(ts) {
    if (!ts) return "—";
    const d = new Date(ts);
    return isNaN(d) ? ts : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }
  function loss(v) { return v === null || v === undefined ? "—" : v.toFixed(4); }
  function badge(job) {
    const wrap = h("div", null, h("span", { class: "badge " + job.status, text: job.status, title: job.state }));
    if (job.progress !== null && job.progress !== undefined && job.status !== "succeeded") {
      wrap.append(h("div", { class: "progress", title: Math.round(job.progress * 100) + "%" },
        h("span", { style: "width:" + Math.round(job.progress * 100) + "%" })));
    } else if (job.status === "running" && job.last_step) {
      wrap.append(h("div", { class: "sub", text: "step " + job.last_step }));
    }
    return wrap;
  }
  function taskLink(creator) {
    if (!creator) return h("span", { class: "sub", text: "—" });
    if (!creator.run_id) return h("span", { class: "sub", text: creator.dag_id + " / " + (creator.task_id || "?") });
    let href = `${BASE}/dags/${encodeURIComponent(creator.dag_id)}/runs/${encodeURIComponent(creator.run_id)}` +
      `/tasks/${encodeURIComponent(creator.task_id)}`;
    if (creator.map_index !== undefined && creator.map_index >= 0) href += "/mapped/" + creator.map_index;
    return h("div", null,
      h("a", { href, target: "_top", text: creator.dag_id + " › " + creator.task_id, "data-test": "task-link" }),
      h("div", { class: "sub", text: creator.run_id }));
  }
  function jobHref(connId, names) {
    const q = new URLSearchParams({ conn_id: connId });
    for (const n of names) q.append("name", n);
    return BASE + "/tuning/job?" + q;
  }
  function notice(target, message, isError) {
    target.replaceChildren(h("div", { class: "notice" + (isError ? " error" : ""), role: isError ? "alert" : "status", text: message }));
  }
  function copyable(label, value) {
    const button = h("button", { type: "button", text: "Copy" });
    button.addEventListener("click", async () => {
      try { await navigator.clipboard.writeText(value); button.textContent = "Copied"; }
      catch (e) {
        const range = document.createRange(); range.selectNodeContents(code);
        const sel = getSelection(); sel.removeAllRanges(); sel.addRange(range); button.textContent = "Selected";
      }
      setTimeout(() => (button.textContent = "Copy"), 1500);
    });
    const code = h("code", { text: value });
    return h("div", { class: "copy" }, h("span", { class: "sub", text: label }), code, button);
  }
  function table(obj) {
    const dl = h("dl");
    for (const key of Object.keys(obj || {})) {
      let value = obj[key];
      if (value !== null && typeof value === "object") value = JSON.stringify(value);
      dl.append(h("dt", { text: key }), h("dd", { class: "mono", text: String(value) }));
    }
    return Object.keys(obj || {}).length ? dl : h("div", { class: "sub", text: "none reported" });
  }

  // --- list page ----------------------------------------------------------------------------
  async function listPage() {
    const state = {
      conn: PARAMS.get("conn_id") || "", status: PARAMS.get("status") || "", q: PARAMS.get("q") || "",
      sort: PARAMS.get("sort") || "created", order: PARAMS.get("order") || "desc",
      offset: +(PARAMS.get("offset") || 0), limit: 50, selected: new Set(),
    };
    const root = document.getElementById("root");
    const connInput = h("input", { id: "conn", list: "conns", placeholder: "connection id", size: 32, "aria-label": "Connection" });
    const conns = h("datalist", { id: "conns" });
    const search = h("input", { id: "search", type: "search", placeholder: "Filter by name, model, DAG…", size: 28, "aria-label": "Filter" });
    const statusBar = h("div", { class: "bar", id: "statuses" });
    const compare = h("button", { id: "compare", type: "button", disabled: "", text: "Compare selected" });
    const message = h("div", { id: "message" });
    const body = h("div", { class: "wrap" });
    const pager = h("div", { class: "pager" });
    root.append(h("h1", { text: "Tuning jobs" }),
      h("div", { class: "bar" }, h("label", { for: "conn", text: "Connection" }), connInput, conns, search,
        h("span", { class: "grow" }), compare),
      statusBar, message, body, pager);

    try {
      const info = await getJson("/connections");
      for (const c of info.connections) conns.append(h("option", { value: c.conn_id, text: c.backend }));
      for (const d of info.defaults) conns.append(h("option", { value: d }));
      if (!state.conn) state.conn = (info.connections[0] || {}).conn_id || info.defaults[0];
    } catch (e) { notice(message, e.message, true); return; }
    connInput.value = state.conn; search.value = state.q;

    function syncUrl() {
      const q = new URLSearchParams({ conn_id: state.conn });
      if (state.status) q.set("status", state.status);
      if (state.q) q.set("q", state.q);
      if (state.sort !== "created" || state.order !== "desc") { q.set("sort", state.sort); q.set("order", state.order); }
      if (state.offset) q.set("offset", state.offset);
      history.replaceState(null, "", "?" + q);
    }

    const columns = [
      ["", null], ["Name", "name"], ["Display name", "display_name"], ["Base model", "base_model", "hide-narrow"],
      ["State", "status"], ["Created", "created"], ["Finished", "finished", "hide-narrow"],
      ["Final loss", "final_loss"], ["Created by", null],
    ];

    let timer = null;
    async function load() {
      clearTimeout(timer);
      syncUrl();
      let data;
      try {
        data = await getJson("/jobs", { conn_id: state.conn, ...(state.status && { status: state.status }),
          ...(state.q && { q: state.q }), sort: state.sort, order: state.order, offset: state.offset, limit: state.limit });
      } catch (e) {
        notice(message, e.message, true); body.replaceChildren(); pager.replaceChildren(); statusBar.replaceChildren();
        return;
      }
      message.replaceChildren();
      statusBar.replaceChildren(...["", "running", "pending", "succeeded", "failed", "cancelled"].map((s) => {
        const count = s ? data.counts[s] || 0 : data.total;
        return h("button", { type: "button", class: state.status === s ? "on" : "", "data-status": s || "all",
          text: `${s || "all"} (${count})`, onclick: () => { state.status = s; state.offset = 0; load(); } });
      }));
      const head = h("tr", null, ...columns.map(([label, key, cls]) => {
        const th = h("th", { class: (cls || "") + (key ? " sortable" : "") + (key === state.sort ? " sorted " + state.order : ""), text: label });
        if (key) th.addEventListener("click", () => {
          state.order = state.sort === key && state.order === "desc" ? "asc" : "desc"; state.sort = key; load();
        });
        return th;
      }));
      const rows = data.jobs.map((job) => {
        const box = h("input", { type: "checkbox", "aria-label": "select " + job.name });
        box.checked = state.selected.has(job.name);
        box.addEventListener("change", () => {
          box.checked ? state.selected.add(job.name) : state.selected.delete(job.name);
          compare.disabled = state.selected.size < 2;
        });
        return h("tr", { "data-job": job.name, "data-status": job.status },
          h("td", null, box),
          h("td", null, h("a", { href: jobHref(state.conn, [job.name]), class: "mono", text: job.name.split("/").pop() })),
          h("td", { text: job.display_name || "—" }),
          h("td", { class: "hide-narrow mono", text: job.base_model || "—" }),
          h("td", null, badge(job)),
          h("td", { text: when(job.created) }),
          h("td", { class: "hide-narrow", text: when(job.finished) }),
          h("td", { class: "num", text: loss(job.final_loss) }),
          h("td", null, taskLink(job.created_by)));
      });
      body.replaceChildren(rows.length
        ? h("table", { id: "jobs" }, h("thead", null, head), h("tbody", null, ...rows))
        : h("div", { class: "empty", text: data.total ? "No job matches the filter." : "This connection has no tuning jobs." }));
      const last = Math.min(data.offset + data.limit, data.matched);
      pager.replaceChildren(
        h("button", { type: "button", text: "‹ Previous", ...(data.offset ? {} : { disabled: "" }),
          onclick: () => { state.offset = Math.max(0, state.offset - state.limit); load(); } }),
        h("span", { id: "range", text: data.matched ? `${data.offset + 1}–${last} of ${data.matched}` : "0 of 0" }),
        h("button", { type: "button", text: "Next ›", ...(last < data.matched ? {} : { disabled: "" }),
          onclick: () => { state.offset += state.limit; load(); } }));
      if (data.jobs.some((j) => j.status === "running" || j.status === "pending")) timer = setTimeout(load, REFRESH_MS * 2);
    }

    connInput.addEventListener("change", () => { state.conn = connInput.value.trim(); state.offset = 0; state.selected.clear(); load(); });
    let typing = null;
    search.addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => { state.q = search.value.trim(); state.offset = 0; load(); }, 250);
    });
    compare.addEventListener("click", () => { location.href = jobHref(state.conn, [...state.selected]); });
    await load();
  }

  // --- job page and task tab ----------------------------------------------------------------
  function chartControls(onChange) {
    const smoothing = h("select", { id: "smoothing", "aria-label": "Smoothing" },
      ...[["0", "no smoothing"], ["0.6", "smoothing 0.6"], ["0.9", "smoothing 0.9"]].map(([v, t]) => h("option", { value: v, text: t })));
    const log = h("input", { type: "checkbox", id: "log" });
    smoothing.addEventListener("change", onChange); log.addEventListener("change", onChange);
    return { node: h("div", { class: "bar" }, h("h2", { text: "Loss per step", style: "margin:0" }), h("span", { class: "grow" }),
      smoothing, h("label", null, log, " log scale")), opts: () => ({ smoothing: +smoothing.value, log: log.checked }) };
  }

  function jobCard(job) {
    const card = h("div", { class: "card", "data-job": job.name },
      h("h3", null, document.createTextNode(job.display_name || job.name.split("/").pop())),
      h("div", { class: "mono sub", text: job.name }));
    const dl = h("dl");
    const facts = [["State", badge(job)], ["Backend", job.backend === "vertex" ? "Vertex AI" : "Gemini API"],
      ["Base model", job.base_model || "—"], ["Created", when(job.created)], ["Started", when(job.started)],
      ["Finished", when(job.finished)], ["Final loss", loss(job.final_loss)], ["Steps reported", String(job.curve.length)]];
    if (job.progress !== null && job.progress !== undefined) facts.push(["Progress", Math.round(job.progress * 100) + "%"]);
    facts.push(["Created by", taskLink(job.created_by)]);
    for (const [k, v] of facts) dl.append(h("dt", { text: k }), h("dd", null, v));
    card.append(dl);
    if (job.error) card.append(h("div", { class: "notice error", "data-test": "job-error",
      text: (job.error.code ? `Error ${job.error.code}: ` : "Error: ") + job.error.message }));
    const outs = Object.entries(job.outputs || {});
    if (outs.length) card.append(h("h2", { text: "Use it" }), ...outs.map(([k, v]) => copyable(k.replace("_", " "), v)));
    card.append(h("h2", { text: "Hyperparameters" }), table(job.hyperparameters));
    card.append(h("h2", { text: "Data" }), table(job.data_stats));
    if (job.backend === "vertex") card.append(h("div", { class: "sub",
      text: "Vertex AI does not report per-step loss through its API: see the job's Vertex Experiment for metrics." }));
    return card;
  }

  async function showJobs(root, loadJobs, title) {
    const message = h("div", { id: "message" });
    const chartBox = h("div", { id: "chart" });
    const cards = h("div", { class: "grid2", id: "cards" });
    let jobs = [];
    const controls = chartControls(() => render());
    function render() {
      TuningChart.draw(chartBox, jobs.map((j) => ({ label: j.display_name || j.name.split("/").pop(), points: j.curve })),
        { ...controls.opts(), emptyText: jobs.length && jobs.every((j) => j.backend === "vertex")
          ? "Vertex AI reports no per-step loss through its API." : "No loss values reported yet." });
    }
    root.append(title, message, controls.node, chartBox, cards);
    let timer = null;
    async function refresh() {
      clearTimeout(timer);
      try {
        jobs = await loadJobs();
      } catch (e) { notice(message, e.message, true); timer = setTimeout(refresh, REFRESH_MS * 2); return; }
      if (jobs === null) { timer = setTimeout(refresh, REFRESH_MS); return; }
      message.replaceChildren();
      render();
      cards.replaceChildren(...jobs.map(jobCard));
      const live = jobs.some((j) => j.status === "running" || j.status === "pending");
      root.dataset.live = live ? "yes" : "no";
      if (live) timer = setTimeout(refresh, REFRESH_MS);
    }
    await refresh();
    return { message };
  }

  async function jobPage() {
    const root = document.getElementById("root");
    const connId = PARAMS.get("conn_id");
    const names = PARAMS.getAll("name");
    if (!names.length && PARAMS.get("dag_id")) return taskPage();  // an extra link without a connection
    const back = h("a", { href: BASE + "/tuning/?" + new URLSearchParams({ conn_id: connId || "" }), text: "‹ All tuning jobs" });
    const title = h("div", null, back, h("h1", { text: names.length > 1 ? `Comparing ${names.length} jobs` : "Tuning job" }));
    if (!connId || !names.length) { root.append(title); notice(root.appendChild(h("div")), "The page needs ?conn_id=…&name=…", true); return; }
    await showJobs(root, () => Promise.all(names.map((name) => getJson("/job", { conn_id: connId, name }))), title);
  }

  async function taskPage() {
    const root = document.getElementById("root");
    const key = { dag_id: PARAMS.get("dag_id") || "", run_id: PARAMS.get("run_id") || "", task_id: PARAMS.get("task_id") || "" };
    const mapIndex = PARAMS.get("map_index");
    if (mapIndex && /^-?\d+$/.test(mapIndex)) key.map_index = mapIndex;
    const waiting = h("div", { class: "sub", id: "waiting" });
    const title = h("div", null, waiting);
    let link = null;
    await showJobs(root, async () => {
      const job = await getJson("/task", key);
      if (!job.name) { waiting.textContent = job.detail + " This tab refreshes by itself."; return null; }
      waiting.textContent = "";
      if (!link) {
        link = h("a", { href: jobHref(job.conn_id, [job.name]), target: "_blank", text: "Open the job page ↗" });
        title.append(link);
      }
      return [job];
    }, title);
  }

  const pages = { list: listPage, job: jobPage, ti: taskPage };
  pages[PAGE]().catch((e) => notice(document.getElementById("root"), e.message, true));
})();
