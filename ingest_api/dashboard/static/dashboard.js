// Keeps the rollout slider and its number field in step. The pages work without it.
document.addEventListener("input", (event) => {
  const target = event.target;
  const other = target.dataset && target.dataset.sync ? document.getElementById(target.dataset.sync) : null;
  if (other) other.value = target.value;
});
