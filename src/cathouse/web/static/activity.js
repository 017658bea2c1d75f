/* The activity page, live. Each event of the API's stream (read with the session cookie) asks
   the page for the entries newer than the one on top, rendered by the server, and puts them
   first; a status line tells screen readers how many came. Without JavaScript the page is the
   same feed, with links to older pages. */
(function () {
  "use strict";
  var list = document.getElementById("entries");
  var news = document.getElementById("activity-news");
  if (!list || !list.dataset.stream || !window.EventSource || !window.fetch) return;
  var busy = false, again = false, failures = 0;

  function newest() {
    var top = list.querySelector("li[data-id]");
    return top ? top.getAttribute("data-id") : "0";
  }

  function catchUp() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(list.dataset.newer + encodeURIComponent(newest()), {
      credentials: "same-origin", headers: { "HX-Request": "true" }
    }).then(function (answer) {
      return answer.ok ? answer.text() : "";
    }).then(function (html) {
      var before = list.querySelectorAll("li[data-id]").length;
      list.insertAdjacentHTML("afterbegin", html);
      var came = list.querySelectorAll("li[data-id]").length - before;
      if (came > 0) news.textContent = came === 1 ? "1 new entry at the top." : came + " new entries at the top.";
    }).catch(function () {}).then(function () {
      busy = false;
      if (again) { again = false; catchUp(); }
    });
  }

  function listen() {
    var stream = new EventSource(list.dataset.stream, { withCredentials: true });
    stream.onopen = function () { failures = 0; };
    stream.onmessage = catchUp;
    stream.onerror = function () {
      // A refused stream (the access token in the cookie expired) is not retried by the browser:
      // asking the page for what is new renews the session, then the stream is opened again.
      if (stream.readyState !== EventSource.CLOSED || ++failures > 5) return;
      setTimeout(function () { catchUp(); listen(); }, 2000 * failures);
    };
  }

  listen();
})();
