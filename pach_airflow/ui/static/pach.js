// Links to Airflow's own pages (target="_top") from inside the Airflow UI's plugin iframe.
// Airflow sandboxes that iframe without allow-top-navigation, so such a link cannot navigate the window
// the Airflow UI lives in. The iframe is same-origin, though: hand the address to the UI's router
// (history.pushState + popstate, which React Router listens to) so the UI shows that page itself.
document.addEventListener("click", function (event) {
  var link = event.target.closest && event.target.closest('a[target="_top"]');
  if (!link || window.top === window || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) {
    return;
  }
  try {
    var top = window.top;
    if (new URL(link.href).origin !== top.location.origin) return;
    event.preventDefault();
    top.history.pushState({ usr: null, key: Math.random().toString(36).slice(2, 10), idx: (top.history.state && top.history.state.idx || 0) + 1 }, "", link.href);
    top.dispatchEvent(new PopStateEvent("popstate", { state: top.history.state }));
  } catch (err) {
    // Not the Airflow UI around us (another origin): leave the link to the browser.
  }
});
