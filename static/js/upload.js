/* Upload form: drag and drop, the chosen file's name and size, a check of type and size
 * before anything is sent. The server checks everything again; this only saves a wasted
 * upload. Messages come translated from data-* attributes on the form. */
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form) return;
  var input = form.querySelector("input[type=file]");
  var zone = document.getElementById("dropzone");
  var info = document.getElementById("fileinfo");
  var error = document.getElementById("client-error");
  var button = document.getElementById("upload-button");
  var maxBytes = parseInt(form.dataset.maxBytes, 10);

  function human(bytes) {
    if (bytes < 1024) return bytes + " B";
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + " KB";
    return (bytes / 1024 / 1024).toFixed(1) + " MB";
  }

  function problem(file) {
    if (!file) return form.dataset.msgEmpty;
    if (!/\.zip$/i.test(file.name)) return form.dataset.msgNotZip;
    if (file.size > maxBytes) return form.dataset.msgTooLarge;
    return "";
  }

  function show() {
    var file = input.files && input.files[0];
    info.textContent = file ? file.name + " (" + human(file.size) + ")" : "";
    var message = file ? problem(file) : "";
    error.textContent = message;
    error.hidden = !message;
    zone.classList.toggle("invalid", !!message);
    return message;
  }

  input.addEventListener("change", show);
  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (event) {
      event.preventDefault();
      zone.classList.add("over");
    });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function (event) {
      event.preventDefault();
      zone.classList.remove("over");
    });
  });
  zone.addEventListener("drop", function (event) {
    if (event.dataTransfer && event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      show();
    }
  });
  form.addEventListener("submit", function (event) {
    var message = problem(input.files && input.files[0]);
    if (message) {
      event.preventDefault();
      error.textContent = message;
      error.hidden = false;
      return;
    }
    button.disabled = true;
    button.textContent = form.dataset.msgUploading;
  });
})();
