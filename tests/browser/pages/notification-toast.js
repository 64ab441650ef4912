// The seed's `Notifications` shows each notification with a `NotificationToast`, which the seed
// names but does not define: here it shows the notification's data as JSON text.
import { createEffect } from 'solid-js';

export function NotificationToast(props) {
  const toast = document.createElement('div');
  toast.className = 'toast';
  toast.setAttribute('role', 'status');
  createEffect(() => {
    toast.textContent = JSON.stringify(props.notification);
  });
  return toast;
}
