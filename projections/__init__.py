"""Read-model builders fed from MAIL_EVT; the database schema lives in ../migrations."""
