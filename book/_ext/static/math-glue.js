// Punctuation after inline math stays on the math's line (book/_ext/offline.py).
// MathJax typesets inline math as an inline-block (mjx-container), and a browser may break a line
// between it and the "." or "," that follows, which then starts the next line alone. Once MathJax
// has typeset the page, each inline formula followed by punctuation is wrapped, with that
// punctuation, in a span that does not break.
(function () {
  "use strict";
  var PUNCT = /^[.,;:!?)\]]+/;

  function outer(m) {  // the element holding the formula alone (Sphinx's span.math around it)
    var e = m;
    while (e.parentElement && e.parentElement.tagName === "SPAN" && e.parentElement.childNodes.length === 1) {
      e = e.parentElement;
    }
    return e;
  }

  function glue() {
    document.querySelectorAll('mjx-container:not([display="true"])').forEach(function (m) {
      var e = outer(m), next = e.nextSibling;
      if (!next || next.nodeType !== Node.TEXT_NODE || e.parentElement.classList.contains("math-nobreak")) {
        return;
      }
      var found = PUNCT.exec(next.nodeValue);
      if (!found) {
        return;
      }
      var span = document.createElement("span");
      span.className = "math-nobreak";
      span.style.whiteSpace = "nowrap";
      e.parentNode.insertBefore(span, e);
      span.appendChild(e);
      span.appendChild(document.createTextNode(found[0]));
      next.nodeValue = next.nodeValue.slice(found[0].length);
    });
  }

  window.addEventListener("load", function () {
    if (window.MathJax && window.MathJax.startup && window.MathJax.startup.promise) {
      window.MathJax.startup.promise.then(glue);
    }
  });
})();
