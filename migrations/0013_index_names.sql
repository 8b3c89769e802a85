-- Until this release a replay left the read models' secondary indexes under the names
-- Postgres gave its table copies (`messages_created_at_id_idx`), not the ones 0002 and
-- 0009 give them: a database replayed before gets those names back. On one never
-- replayed (or replayed since), none of the old names exists and nothing changes.
ALTER INDEX IF EXISTS messages_created_at_id_idx RENAME TO messages_created_idx;
ALTER INDEX IF EXISTS messages_status_created_at_id_idx RENAME TO messages_status_idx;
ALTER INDEX IF EXISTS messages_template_created_at_id_idx RENAME TO messages_template_idx;
ALTER INDEX IF EXISTS messages_to_addrs_idx RENAME TO messages_to_idx;
ALTER INDEX IF EXISTS messages_rcpt_domains_idx RENAME TO messages_domains_idx;
ALTER INDEX IF EXISTS message_events_message_id_seq_idx RENAME TO message_events_message_idx;
ALTER INDEX IF EXISTS message_events_occurred_at_idx RENAME TO message_events_occurred_brin;
