// MathJax configuration for pymdownx.arithmatex (generic mode). MathJax itself is
// served by the site (assets/mathjax/, see docs/hooks/mathjax.py): no network.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};

// Typeset again whenever Material swaps the page content (instant navigation), once
// MathJax's own start-up (which typesets the first page) is done. Where MathJax did
// not load, MathJax.startup does not exist: the page keeps its TeX, with no error.
document$.subscribe(() => {
  const startup = window.MathJax && window.MathJax.startup;
  if (!startup || !startup.promise) {
    return;
  }
  startup.promise.then(() => {
    MathJax.typesetClear();
    MathJax.texReset();
    return MathJax.typesetPromise();
  });
});
