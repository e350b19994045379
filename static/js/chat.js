// The conversation page: live tokens over the websocket, everything else server-rendered.
// Streamed text is only ever set with textContent; finished messages come back from the
// server already rendered and sanitised, and htmx never processes their content (hx-disable).
(function () {
  "use strict";
  var root = document.getElementById("chat");
  if (!root) return;
  var bodyUrl = root.dataset.bodyUrl;
  var alertBox = document.getElementById("chat-alert");
  var connection = document.getElementById("connection");
  var socket = null, retry = 0, refreshing = null, refreshAgain = false, lastEvent = Date.now();

  function showAlert(text, loginUrl) {
    alertBox.textContent = text;
    if (text && loginUrl) {  // signed out: sign in beside this page, which keeps what was typed
      var link = document.createElement("a");
      link.href = loginUrl + "?next=" + encodeURIComponent(location.pathname);
      link.target = "_blank";
      link.rel = "noopener";
      link.textContent = "Sign in";
      alertBox.appendChild(document.createTextNode(" "));
      alertBox.appendChild(link);
    }
    alertBox.hidden = !text;
  }

  var SIGNED_OUT = "You were signed out — sign in again (what you typed is kept).";
  function signedOut(text, loginUrl) {
    setConnection("signed out");
    showAlert(text || SIGNED_OUT, loginUrl || root.dataset.loginUrl);
  }

  function setConnection(state) {
    connection.textContent = state;
    connection.dataset.state = state;
  }

  function messageEl(id) { return document.getElementById("msg-" + id); }

  // To the very end of the page: the sticky composer then sits below the newest message, where
  // aligning the message itself with the viewport's bottom would leave it under the composer.
  function scrollToEnd() {
    window.scrollTo(0, document.documentElement.scrollHeight);
  }

  // Re-render the conversation body from the server (one request at a time, the last one wins).
  function refreshBody() {
    if (refreshing) { refreshAgain = true; return refreshing; }
    var target = document.getElementById("conversation-body");
    refreshing = fetch(bodyUrl, {credentials: "same-origin", headers: {"HX-Request": "true"}})
      .then(function (response) {
        if (response.status === 401) {
          return response.text().then(function (text) {
            signedOut(text, response.headers.get("X-Login-Url"));
            return null;
          });
        }
        if (!response.ok) throw new Error("the page could not be refreshed (" + response.status + ")");
        return response.text();
      })
      .then(function (html) {
        if (html === null) return;
        var focused = document.activeElement && document.activeElement.id;
        var drafts = saveDrafts(target);
        target.innerHTML = html;
        restoreDrafts(target, drafts);
        if (window.htmx) window.htmx.process(target);
        if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
        scrollToEnd();
      })
      .catch(function (error) { showAlert(error.message); })
      .finally(function () {
        refreshing = null;
        if (refreshAgain) { refreshAgain = false; refreshBody(); }
      });
    return refreshing;
  }

  // What the person was typing survives a refresh.
  function saveDrafts(target) {
    var drafts = {};
    target.querySelectorAll("textarea[id], input[type=text][id]").forEach(function (el) { drafts[el.id] = el.value; });
    return drafts;
  }
  function restoreDrafts(target, drafts) {
    Object.keys(drafts).forEach(function (id) {
      var el = target.querySelector("#" + CSS.escape(id));
      if (el && drafts[id] && !el.value) el.value = drafts[id];
    });
  }

  function applyStreaming(message) {
    var el = messageEl(message.id);
    if (!el) { refreshBody(); return; }
    if (message.status !== "streaming") { refreshBody(); return; }
    var stream = el.querySelector(".msg-stream");
    if (stream && message.content.length >= stream.textContent.length) stream.textContent = message.content;
    el.dataset.seq = String(message.chunks);
    if (message.content) setNote(el, "");
  }

  function setNote(el, text) {
    var note = el.querySelector(".msg-note");
    if (note) note.textContent = text;
  }

  function onChunk(event) {
    var el = messageEl(event.message);
    if (!el) { refreshBody(); return; }
    var expected = Number(el.dataset.seq || 0);
    if (event.seq < expected) return;  // already shown (persisted before the page was rendered)
    if (event.seq > expected) {  // missed chunks: ask for the whole message as saved
      send({type: "resume", message: event.message});
      return;
    }
    var stream = el.querySelector(".msg-stream");
    if (stream) stream.textContent += event.text;
    el.dataset.seq = String(expected + 1);
    setNote(el, "");
    if (event.done) refreshBody(); else if (isNearBottom()) scrollToEnd();
  }

  function isNearBottom() {
    return window.innerHeight + window.scrollY >= document.body.scrollHeight - 200;
  }

  var handlers = {
    history: function (data) {
      data.messages.forEach(function (message) {
        if (message.status === "streaming" || !messageEl(message.id)) applyStreaming(message);
      });
    },
    message: function (data) {
      var el = messageEl(data.message.id);
      if (!el) { refreshBody(); return; }
      if (data.message.status === "streaming") {
        applyStreaming(data.message);
        if (data.message.note) setNote(el, data.message.note);
      } else if (el.dataset.status === "streaming") {
        refreshBody();
      }
    },
    thread: function (data) { if (!messageEl(data.leaf)) refreshBody(); },
    chunk: onChunk,
    status: function (data) { if (data.detail) showAlert(data.detail); refreshBody(); },
    tests: function () { refreshBody(); },
    error: function (data) { showAlert(data.detail); }
  };

  function send(payload) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(payload));
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + root.dataset.socket);
    setConnection("connecting…");
    socket.onopen = function () { retry = 0; setConnection("live"); };
    socket.onmessage = function (event) {
      var data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      lastEvent = Date.now();
      var handler = handlers[data.type];
      if (handler) handler(data);
    };
    socket.onclose = function (event) {
      if (event.code === 4401) { signedOut(); return; }
      if (event.code === 4404) {
        setConnection("closed");
        showAlert("This conversation no longer exists.");
        return;
      }
      setConnection("reconnecting…");
      retry = Math.min(retry + 1, 6);
      setTimeout(function () { connect(); refreshBody(); }, 500 * Math.pow(2, retry - 1));
    };
  }

  // Refusals (busy, rate limit, model worker down) keep the typed text and say why.
  document.body.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.status === 401) { signedOut(xhr.responseText, xhr.getResponseHeader("X-Login-Url")); return; }
    showAlert(xhr.responseText || "The request failed (" + xhr.status + ").");
  });
  document.body.addEventListener("htmx:sendError", function () {
    showAlert("The server could not be reached; nothing was sent.");
  });
  document.body.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.successful) showAlert("");
  });
  document.body.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "conversation-body") scrollToEnd();
  });

  // Enter sends, Shift+Enter is a new line.
  document.addEventListener("keydown", function (event) {
    var area = event.target;
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    if (area.id !== "message-text" && area.id !== "feedback") return;
    event.preventDefault();
    if (area.value.trim()) area.form.requestSubmit();
  });

  // A reply that has gone quiet: ask for it as saved (it may have ended while an event was lost;
  // if its worker died, the server marks it interrupted and says so).
  setInterval(function () {
    if (Date.now() - lastEvent < 10000) return;
    document.querySelectorAll("li.msg[data-status=streaming]").forEach(function (el) {
      send({type: "resume", message: Number(el.dataset.message)});
    });
    lastEvent = Date.now();
  }, 5000);

  connect();
  scrollToEnd();
})();
