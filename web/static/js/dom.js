// Small DOM helpers shared by the page scripts (loaded with `defer` before them, in base.html).
(function () {
  "use strict";
  var ns = window.SupportSwarm = window.SupportSwarm || {};
  // An element with a class and text. Never innerHTML: titles, answers and messages are user text.
  ns.el = function (tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };
})();
