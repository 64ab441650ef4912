// Host code shared by the seed pages: which room and user the page is for (?room=…&user=…).
export const params = new URLSearchParams(location.search);
export const roomId = params.get('room') || 'seed';
export const userId = params.get('user') || 'seed-user';
