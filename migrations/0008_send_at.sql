-- Scheduled sends: when a message is due (shared.fold.MessageState.send_at).
ALTER TABLE messages ADD COLUMN send_at timestamptz;
