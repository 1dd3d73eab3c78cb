// What Warden knows about built-in functions a statement calls. A SELECT is only `read` when
// every function it calls is known to have no side effects; PostgreSQL's planner cannot tell us
// (volatility markings are not side-effect markings: random() is volatile and harmless,
// set_config() is volatile and changes the session), so the lists are ours, reviewed by hand.
//
// Policy: a function on SIDE_EFFECT_FUNCTIONS gives the statement that function's class and a
// `function:<name>` flag; a function on neither list (user-defined functions, extensions, new
// built-ins) makes the statement `write` with an `unknownFunction:<name>` flag, because a
// read-only policy cannot verify what it does. Schema-qualified calls count as built-in only
// under pg_catalog.

import type { SqlStatementClass } from '../../api/types.ts';

/** Built-ins that change state, reach outside the database, or read server files. */
export const SIDE_EFFECT_FUNCTIONS: ReadonlyMap<string, SqlStatementClass> = new Map<string, SqlStatementClass>([
  // Sessions, settings, signals
  ['set_config', 'session'],
  ['pg_terminate_backend', 'privilege'],
  ['pg_cancel_backend', 'privilege'],
  ['pg_reload_conf', 'privilege'],
  ['pg_rotate_logfile', 'privilege'],
  ['pg_promote', 'privilege'],
  ['pg_log_backend_memory_contexts', 'privilege'],
  ['pg_switch_wal', 'utility'],
  ['pg_create_restore_point', 'utility'],
  ['pg_backup_start', 'utility'],
  ['pg_backup_stop', 'utility'],
  ['pg_checkpoint', 'utility'],
  ['pg_create_physical_replication_slot', 'privilege'],
  ['pg_create_logical_replication_slot', 'privilege'],
  ['pg_drop_replication_slot', 'privilege'],
  ['pg_replication_origin_create', 'privilege'],
  ['pg_logical_emit_message', 'write'],
  ['pg_import_system_collations', 'ddl'],
  ['pg_stat_reset', 'utility'],
  ['pg_stat_reset_shared', 'utility'],
  ['pg_stat_reset_single_table_counters', 'utility'],
  ['pg_stat_statements_reset', 'utility'],
  // Sequences and transaction ids
  ['nextval', 'write'],
  ['setval', 'write'],
  ['txid_current', 'write'],
  ['pg_current_xact_id', 'write'],
  // Notifications and advisory locks
  ['pg_notify', 'write'],
  ['pg_advisory_lock', 'utility'],
  ['pg_advisory_xact_lock', 'utility'],
  ['pg_advisory_lock_shared', 'utility'],
  ['pg_try_advisory_lock', 'utility'],
  ['pg_advisory_unlock', 'utility'],
  ['pg_advisory_unlock_all', 'utility'],
  // Large objects (server-side file I/O for lo_import/lo_export)
  ['lo_import', 'write'],
  ['lo_export', 'write'],
  ['lo_create', 'write'],
  ['lo_creat', 'write'],
  ['lo_unlink', 'write'],
  ['lo_from_bytea', 'write'],
  ['lo_put', 'write'],
  ['lo_truncate', 'write'],
  ['lo_open', 'write'],
  ['lowrite', 'write'],
  // Server files
  ['pg_read_file', 'privilege'],
  ['pg_read_binary_file', 'privilege'],
  ['pg_ls_dir', 'privilege'],
  ['pg_stat_file', 'privilege'],
  ['pg_ls_logdir', 'privilege'],
  ['pg_ls_waldir', 'privilege'],
  ['pg_file_write', 'privilege'],
  ['pg_file_unlink', 'privilege'],
  ['pg_file_rename', 'privilege'],
  // Functions that run a query given as a string: dynamic SQL in disguise
  ['query_to_xml', 'write'],
  ['query_to_xml_and_xmlschema', 'write'],
  ['query_to_xmlschema', 'write'],
  ['cursor_to_xml', 'write'],
  ['dblink', 'write'],
  ['dblink_exec', 'write'],
  ['dblink_connect', 'write'],
  ['dblink_send_query', 'write'],
  ['dblink_open', 'write'],
]);

/** Built-ins known to only compute or read: the allow-list of a `read` statement. */
export const READ_ONLY_FUNCTIONS: ReadonlySet<string> = new Set(
  `
  count sum avg min max array_agg string_agg json_agg jsonb_agg json_object_agg jsonb_object_agg bool_and bool_or every
  bit_and bit_or stddev stddev_pop stddev_samp variance var_pop var_samp corr covar_pop covar_samp percentile_cont
  percentile_disc mode range_agg xmlagg
  row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
  lower upper initcap length char_length character_length octet_length bit_length substr substring trim btrim ltrim rtrim
  concat concat_ws replace split_part left right lpad rpad position strpos format reverse repeat translate ascii chr
  starts_with regexp_replace regexp_match regexp_matches regexp_split_to_array regexp_split_to_table regexp_like
  regexp_count regexp_instr regexp_substr quote_ident quote_literal quote_nullable to_hex md5 sha224 sha256 sha384 sha512
  encode decode convert_from convert_to string_to_array array_to_string unistr normalize overlay
  to_char to_number to_date to_timestamp date_trunc date_part extract date_bin age make_date make_time make_timestamp
  make_timestamptz make_interval justify_days justify_hours justify_interval isfinite timezone
  now transaction_timestamp statement_timestamp clock_timestamp timeofday
  abs round ceil ceiling floor trunc mod power pow sqrt cbrt exp ln log log10 sign div pi degrees radians
  sin cos tan asin acos atan atan2 greatest least width_bucket random random_normal gcd lcm factorial scale
  generate_series generate_subscripts unnest array_length array_lower array_upper array_dims array_ndims cardinality
  array_position array_positions array_remove array_replace array_append array_prepend array_cat array_fill
  to_json to_jsonb row_to_json array_to_json json_build_object jsonb_build_object json_build_array jsonb_build_array
  json_object jsonb_object json_array_elements jsonb_array_elements json_array_elements_text jsonb_array_elements_text
  json_each jsonb_each json_each_text jsonb_each_text json_extract_path jsonb_extract_path json_extract_path_text
  jsonb_extract_path_text json_object_keys jsonb_object_keys json_typeof jsonb_typeof jsonb_set jsonb_insert
  jsonb_pretty jsonb_strip_nulls json_strip_nulls jsonb_path_query jsonb_path_exists jsonb_path_match
  jsonb_path_query_array jsonb_path_query_first json_array_length jsonb_array_length json_populate_record
  jsonb_populate_record json_to_record jsonb_to_record json_agg_strict jsonb_agg_strict
  coalesce nullif num_nulls num_nonnulls gen_random_uuid uuidv4 uuidv7
  version current_database current_schema current_schemas current_user session_user current_setting
  pg_backend_pid pg_typeof format_type pg_get_userbyid obj_description col_description shobj_description
  pg_table_is_visible pg_type_is_visible pg_function_is_visible pg_get_expr pg_get_indexdef pg_get_constraintdef
  pg_get_viewdef pg_get_triggerdef pg_get_ruledef pg_get_functiondef pg_get_function_arguments
  pg_get_function_identity_arguments pg_get_function_result pg_get_serial_sequence pg_get_partkeydef
  pg_get_statisticsobjdef_columns pg_get_keywords pg_size_pretty pg_relation_size pg_total_relation_size
  pg_table_size pg_indexes_size pg_database_size pg_column_size pg_encoding_to_char pg_char_to_encoding
  has_table_privilege has_column_privilege has_schema_privilege has_database_privilege has_function_privilege
  has_any_column_privilege pg_has_role pg_is_in_recovery pg_postmaster_start_time pg_conf_load_time
  pg_relation_is_publishable pg_get_partition_constraintdef pg_collation_is_visible pg_opclass_is_visible
  pg_conversion_is_visible pg_statistics_obj_is_visible pg_ts_config_is_visible pg_operator_is_visible
  inet_server_addr inet_server_port inet_client_addr inet_client_port pg_sleep pg_sleep_for pg_current_wal_lsn
  host masklen netmask network text int4 int8 numeric float8 bool similar_to_escape similar_escape like_escape
  pg_collation_for is_normalized system_user xmlexists xpath xpath_exists overlaps
  `
    .split(/\s+/)
    .filter(Boolean),
);
