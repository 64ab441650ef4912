import { createSignal, onCleanup, onMount } from 'solid-js';

export function useSSE<T>(url: string) {
  const [data, setData] = createSignal<T | null>(null);
  const [connected, setConnected] = createSignal(false);
  const [error, setError] = createSignal<string | null>(null);

  let eventSource: EventSource | null = null;
  let reconnectTimeout: number;

  const connect = () => {
    eventSource = new EventSource(url, { withCredentials: true });

    eventSource.onopen = () => {
      setConnected(true);
      setError(null);
    };

    eventSource.addEventListener('message', (e) => {
      try {
        setData(JSON.parse(e.data));
      } catch {
        setData(e.data as T);
      }
    });

    eventSource.onerror = () => {
      setConnected(false);
      setError('Connection lost');
      eventSource?.close();
      
      // Reconnect after 3 seconds
      reconnectTimeout = setTimeout(connect, 3000);
    };
  };

  onMount(connect);

  onCleanup(() => {
    eventSource?.close();
    clearTimeout(reconnectTimeout);
  });

  return { data, connected, error };
}
