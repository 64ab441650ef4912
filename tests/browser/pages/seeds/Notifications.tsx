// Usage
function Notifications() {
  const { data, connected } = useSSE<Notification>('/api/sse');

  return (
    <div>
      <Show when={!connected()}>
        <span class="text-yellow-500">Reconnecting...</span>
      </Show>
      <Show when={data()}>
        <NotificationToast notification={data()!} />
      </Show>
    </div>
  );
}
