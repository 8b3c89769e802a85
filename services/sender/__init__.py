"""The sender: turns `rendered` events into SMTP transactions and their outcomes."""
