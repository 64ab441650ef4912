import { createSignal, onCleanup } from 'solid-js';

export function useWebSocket<T>(url: string) {
  const [messages, setMessages] = createSignal<T[]>([]);
  const [connected, setConnected] = createSignal(false);
  
  let ws: WebSocket | null = null;
  let reconnectTimeout: number;

  const connect = () => {
    ws = new WebSocket(url);

    ws.onopen = () => setConnected(true);
    
    ws.onmessage = (e) => {
      const data = JSON.parse(e.data);
      setMessages(prev => [...prev, data]);
    };

    ws.onclose = () => {
      setConnected(false);
      reconnectTimeout = setTimeout(connect, 3000);
    };
  };

  const send = (data: unknown) => {
    if (ws?.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(data));
    }
  };

  connect();

  onCleanup(() => {
    ws?.close();
    clearTimeout(reconnectTimeout);
  });

  return { messages, connected, send };
}

// Usage: Chat
function Chat() {
  const { messages, connected, send } = useWebSocket<ChatMessage>('/ws/chat');
  const [input, setInput] = createSignal('');

  const handleSend = () => {
    send({ type: 'message', text: input() });
    setInput('');
  };

  return (
    <div>
      <For each={messages()}>
        {(msg) => <div>{msg.text}</div>}
      </For>
      <input value={input()} onInput={(e) => setInput(e.target.value)} />
      <button onClick={handleSend} disabled={!connected()}>Send</button>
    </div>
  );
}
