// Host code: the form sends with the seed snippet's sendMessage().
document.getElementById('form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = document.getElementById('text');
  const text = input.value;
  input.value = '';
  await sendMessage(text);
});
