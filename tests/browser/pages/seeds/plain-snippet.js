// 1. Establish SSE connection for receiving messages
const eventSource = new EventSource(`/chat/room/${roomId}/events?user_id=${userId}`);
eventSource.onmessage = function(event) {
    const message = JSON.parse(event.data);
    displayMessage(message);
};

// 2. Send messages via HTTP POST
async function sendMessage(text) {
    await fetch('/chat/messages', {
        method: 'POST',
        headers: {
            'Content-Type': 'application/json',
            'User-ID': userId
        },
        body: JSON.stringify({
            room_id: roomId,
            message: text,
            timestamp: Date.now()
        })
    });
}
