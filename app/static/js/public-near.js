// "Use my position": fill the hidden lat/lon from the device and search (the address box is optional).
document.getElementById("use-position")?.addEventListener("click", () => {
  if (!navigator.geolocation) return;
  navigator.geolocation.getCurrentPosition((pos) => {
    document.getElementById("near-lat").value = pos.coords.latitude.toFixed(6);
    document.getElementById("near-lon").value = pos.coords.longitude.toFixed(6);
    document.getElementById("near-address").value = "";
    document.getElementById("near-form").submit();
  });
});
