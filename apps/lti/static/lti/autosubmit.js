// Submits the one form of an LTI hand-off page (login initiation, id_token post).
// A file, not inline script, so the page keeps script-src 'self'.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("lti-autosubmit");
  if (form) { form.submit(); }
});
