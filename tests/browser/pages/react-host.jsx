// Host code: a React 18 root that renders what the seed's useChatRoom hook returns.
import { useState } from 'react';
import { createRoot } from 'react-dom/client';

import { roomId, userId } from './params.js';
import { useChatRoom } from './seeds/useChatRoom.js';

function Chat({ roomId, userId }) {
  const { messages, connected, sendMessage } = useChatRoom(roomId, userId);
  const [text, setText] = useState('');
  const submit = (event) => {
    event.preventDefault();
    sendMessage(text);
    setText('');
  };
  return (
    <main>
      <p id="status">{connected ? 'connected' : 'connecting'}</p>
      <ul id="messages">
        {messages.map((m) => (
          <li key={m.id} className="message">
            {m.username}: {m.text}
          </li>
        ))}
      </ul>
      <form onSubmit={submit}>
        <input aria-label="Message" value={text} onChange={(e) => setText(e.target.value)} />
        <button type="submit">Send</button>
      </form>
    </main>
  );
}

createRoot(document.getElementById('app')).render(<Chat roomId={roomId} userId={userId} />);
