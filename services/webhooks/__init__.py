"""webhooks: the customer's endpoints hear about their mail, signed per Standard
Webhooks, retried for a day and a half, replayable from any point of the log."""
