// Words for everything that can go wrong, with what the caller can do about it.
// Each describe* returns {code, title, text, action}; `action` names the button the UI offers:
// 'retry' (same PIN again), 'edit-pin' (back to PIN entry), 'reload' (reload the page).

const pinTexts = {
  PIN_EMPTY: 'Enter the 6-digit PIN you agreed on with the other person.',
  PIN_NOT_DIGITS: 'A PIN has digits only. Enter 6 digits.',
  PIN_TOO_SHORT: 'A PIN has exactly 6 digits.',
};

// describePinProblem explains a local validation result from pin.js.
export function describePinProblem(code) {
  return { code, title: 'Check the PIN', text: pinTexts[code] ?? pinTexts.PIN_EMPTY, action: 'edit-pin' };
}

const sentence = (t) => (/[.!?]$/.test(t) ? t : `${t}.`);

// describeServerError turns {"type":"error","code":...,"error":...} into words. The server's
// own text is kept for codes this client does not know, so nothing is lost.
export function describeServerError(code, serverText, pin, retryAfterMs) {
  const p = pin ? ` ${pin}` : '';
  const wait = retryAfterMs > 0 ? `Wait ${Math.max(1, Math.ceil(retryAfterMs / 1000))} seconds` : 'Wait a minute';
  switch (code) {
    case 'INVALID_PIN':
      return { code, title: 'Check the PIN', text: 'The server did not accept this PIN. A PIN has exactly 6 digits.', action: 'edit-pin' };
    case 'ROOM_FULL':
      return { code, title: 'This call is full', text: `Two people are already in the call with PIN${p}. Check that you typed the PIN you agreed on, or choose a new PIN.`, action: 'edit-pin' };
    case 'JOIN_RATE_LIMITED':
      return { code, title: 'Too many attempts', text: `Too many calls were started from your network in a short time. ${wait}, then try again.`, action: 'retry' };
    case 'TOO_MANY_SOCKETS':
      return { code, title: 'Too many connections', text: `Too many calls or tabs are open from your network at once. Close tabs you do not need; ${wait.toLowerCase()}, then try again.`, action: 'retry' };
    case 'RATE_LIMITED':
      return { code, title: 'Too many messages', text: 'This page sent messages faster than the server allows, so it disconnected. Reload the page to call again.', action: 'reload' };
    case 'RESUME_FAILED':
      return { code, title: 'The call ended', text: 'The connection to the server was lost for too long, so your place in the call was given up. Start the call again with the same PIN.', action: 'retry' };
    case 'ROOM_CLOSED':
      return { code, title: 'The call was closed', text: 'The operator of this service closed the call. You can start it again with the same PIN.', action: 'retry' };
    case 'SERVICE_UNAVAILABLE':
      return { code, title: 'Service unavailable', text: 'The call service is temporarily unavailable. Try again in a minute.', action: 'retry' };
    case 'INVALID_MESSAGE':
    case 'MESSAGE_TOO_BIG':
      return { code, title: 'Something went wrong', text: 'This page and the server did not understand each other. Reload the page and try again.', action: 'reload' };
    case 'ALREADY_JOINED':
      return { code, title: 'Something went wrong', text: 'This page tried to join twice. Reload the page and try again.', action: 'reload' };
    default:
      return { code: code || 'SERVER_ERROR', title: 'The server reported a problem', text: serverText ? sentence(serverText) : 'The server closed the call. Try again.', action: 'retry' };
  }
}

// describeClose explains a WebSocket close the server did not explain with an error message.
export function describeClose(code) {
  switch (code) {
    case 1008:
      return { code: 'CLOSE_POLICY', title: 'Connection refused', text: 'The server refused this connection. Open the call from the address your host gave you, then try again.', action: 'reload' };
    case 1009:
      return { code: 'CLOSE_TOO_BIG', title: 'Something went wrong', text: 'A message from this page was too large for the server. Reload the page and try again.', action: 'reload' };
    case 1011:
      return { code: 'CLOSE_SERVER_ERROR', title: 'Server error', text: 'The server hit an error. Try again in a moment.', action: 'retry' };
    case 1012:
    case 1013:
      return { code: 'CLOSE_TRY_LATER', title: 'Server busy', text: 'The server is busy or restarting. Try again in a minute.', action: 'retry' };
    case 1001:
      return { code: 'CLOSE_GOING_AWAY', title: 'Server restarting', text: 'The server is restarting. Try again in a moment.', action: 'retry' };
    default:
      return { code: 'CLOSE_NETWORK', title: 'Cannot reach the server', text: 'The connection to the server was lost. Check your internet connection, then try again.', action: 'retry' };
  }
}

// describeMediaError explains a getUserMedia failure by its DOMException name.
export function describeMediaError(name) {
  switch (name) {
    case 'NotAllowedError':
    case 'PermissionDeniedError':
      return { code: 'MEDIA_DENIED', title: 'Camera and microphone blocked', text: 'This page may not use your camera and microphone. Allow them in your browser\u2019s site settings (the icon next to the address), then try again.', action: 'retry' };
    case 'NotFoundError':
    case 'DevicesNotFoundError':
      return { code: 'MEDIA_NOT_FOUND', title: 'No microphone found', text: 'A call needs at least a microphone. Connect one (or a headset), then try again.', action: 'retry' };
    case 'NotReadableError':
    case 'TrackStartError':
    case 'AbortError':
      return { code: 'MEDIA_IN_USE', title: 'Camera or microphone busy', text: 'Another app or tab is using your camera or microphone. Close it, then try again.', action: 'retry' };
    case 'OverconstrainedError':
    case 'ConstraintNotSatisfiedError':
      return { code: 'MEDIA_CONSTRAINTS', title: 'Camera not supported', text: 'Your camera does not support the settings this page asked for. Try another camera, then try again.', action: 'retry' };
    case 'SecurityError':
    case 'InsecureContext':
      return { code: 'MEDIA_INSECURE', title: 'Secure connection needed', text: 'Browsers allow calls only on secure (https) pages. Open this page with https://, then try again.', action: 'reload' };
    case 'NotSupported':
      return { code: 'MEDIA_UNSUPPORTED', title: 'Browser not supported', text: 'This browser cannot make video calls. Use a current version of Firefox, Chrome, Edge or Safari.', action: 'reload' };
    default:
      return { code: 'MEDIA_FAILED', title: 'Camera and microphone failed', text: 'Your camera and microphone could not be started. Check them, then try again.', action: 'retry' };
  }
}

// Problems of the call itself.
export const callProblems = {
  CONNECT_TIMEOUT: { code: 'CONNECT_TIMEOUT', title: 'No answer from the server', text: 'The server did not answer. Check your internet connection, then try again.', action: 'retry' },
  NEGOTIATION_TIMEOUT: { code: 'NEGOTIATION_TIMEOUT', title: 'Could not connect the call', text: 'Your devices could not reach each other, even through the relay. Check both internet connections (a VPN or a strict firewall can block calls), then try again.', action: 'retry' },
  ICE_FAILED: { code: 'ICE_FAILED', title: 'Connection lost', text: 'The call\u2019s connection was lost and could not be restored. Check your internet connection, then call again.', action: 'retry' },
  SERVER_LOST: { code: 'SERVER_LOST', title: 'The call ended', text: 'The connection to the server was lost for too long, so the call ended. Call again with the same PIN.', action: 'retry' },
  PEER_SETUP: { code: 'PEER_SETUP', title: 'Could not set up the call', text: 'Your browser could not set up the call. Reload the page and try again.', action: 'reload' },
};

// supportText is the line under an error that gives its support code (docs/operations.md);
// '' when there is none. The code is read out as is: no 0/O or 1/I to mistake.
export function supportText(code) {
  return code ? `Support code: ${code}. If you ask for help, give this code.` : '';
}
