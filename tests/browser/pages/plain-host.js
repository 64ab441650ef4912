// Host code for the plain seed snippet (a classic script: its globals are the snippet's).
const pageParams = new URLSearchParams(location.search);
const roomId = pageParams.get('room') || 'seed';
const userId = pageParams.get('user') || 'seed-user';

function displayMessage(message) {
  const li = document.createElement('li');
  li.className = 'message';
  li.dataset.seq = String(message.seq);
  li.textContent = `${message.username}: ${message.text}`;
  document.getElementById('messages').append(li);
}
