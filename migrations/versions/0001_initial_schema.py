"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 07:05:19.659624
"""
from alembic import op
import sqlalchemy as sa
import geoalchemy2
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    # Ticket numbers are digits a caller can key on a phone; well clear of imported Boston ids (12 digits).
    op.execute("CREATE SEQUENCE request_number_seq START 1000001")
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('prefix', sa.Text(), nullable=False),
    sa.Column('key_hash', sa.Text(), nullable=False),
    sa.Column('scopes', sa.ARRAY(sa.Text()), server_default='{open311:write}', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash')
    )
    op.create_geospatial_table('crews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('department', sa.Text(), nullable=True),
    sa.Column('contact', sa.Text(), nullable=True),
    sa.Column('on_duty', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('last_position', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry'), nullable=True),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_index('crews_position_gist', 'crews', [sa.literal_column('(last_position::geography)')], unique=False, postgresql_using='gist')
    op.create_table('layers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('source_srid', sa.Integer(), nullable=True),
    sa.Column('code_field', sa.Text(), nullable=True),
    sa.Column('name_field', sa.Text(), nullable=True),
    sa.Column('feature_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('loaded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('boundary', 'district', 'parcel', 'address')", name='layers_kind'),
    sa.CheckConstraint("name ~ '^[a-z][a-z0-9_]{0,62}$'", name='layers_name_slug'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('topic', sa.Text(), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_try', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('outbox_pending', 'outbox', ['topic', 'next_try'], unique=False, postgresql_where=sa.text('done_at IS NULL'))
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.Text(), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=False),
    sa.Column('full_name', sa.Text(), nullable=True),
    sa.Column('role', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('failed_logins', sa.Integer(), server_default='0', nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("role IN ('agent', 'supervisor', 'crew', 'analyst', 'admin')", name='users_role'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    op.create_geospatial_table('address_points',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('layer_id', sa.Integer(), nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=True),
    sa.Column('number_text', sa.Text(), nullable=True),
    sa.Column('street', sa.Text(), nullable=False),
    sa.Column('unit', sa.Text(), nullable=True),
    sa.Column('city', sa.Text(), nullable=True),
    sa.Column('zip', sa.Text(), nullable=True),
    sa.Column('parcel_id', sa.Text(), nullable=True),
    sa.Column('attributes', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.ForeignKeyConstraint(['layer_id'], ['layers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_geospatial_index('address_points_geom_gist', 'address_points', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index('address_points_street_number', 'address_points', ['street', 'number'], unique=False)
    op.create_index('address_points_street_trgm', 'address_points', ['street'], unique=False, postgresql_using='gin', postgresql_ops={'street': 'gin_trgm_ops'})
    op.create_table('crew_members',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('crew_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['crew_id'], ['crews.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'crew_id')
    )
    op.create_geospatial_table('districts',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('layer_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('attributes', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('geom', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.ForeignKeyConstraint(['layer_id'], ['layers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_geospatial_index('districts_geom_gist', 'districts', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index('districts_layer_code', 'districts', ['layer_id', 'code'], unique=False)
    op.create_geospatial_table('parcels',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('layer_id', sa.Integer(), nullable=False),
    sa.Column('parcel_id', sa.Text(), nullable=False),
    sa.Column('address', sa.Text(), nullable=True),
    sa.Column('attributes', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('geom', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.ForeignKeyConstraint(['layer_id'], ['layers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_geospatial_index('parcels_geom_gist', 'parcels', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index('parcels_parcel_id', 'parcels', ['parcel_id'], unique=False)
    op.create_table('services',
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('group_name', sa.Text(), nullable=True),
    sa.Column('department', sa.Text(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('keywords', sa.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('attributes', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('sla_hours', sa.Integer(), nullable=True),
    sa.Column('public', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('sensitive', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('active', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('default_crew_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("code ~ '^[A-Za-z0-9_.-]{1,64}$'", name='services_code_chars'),
    sa.ForeignKeyConstraint(['default_crew_id'], ['crews.id'], ),
    sa.PrimaryKeyConstraint('code'),
    sa.UniqueConstraint('name')
    )
    op.create_table('routing_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_code', sa.Text(), nullable=False),
    sa.Column('strategy', sa.Text(), nullable=False),
    sa.Column('layer', sa.Text(), nullable=True),
    sa.Column('district_code', sa.Text(), nullable=True),
    sa.Column('attribute', sa.Text(), nullable=True),
    sa.Column('value', sa.Text(), nullable=True),
    sa.Column('crew_id', sa.Integer(), nullable=True),
    sa.Column('priority', sa.Integer(), server_default='100', nullable=False),
    sa.CheckConstraint("strategy <> 'district' OR (layer IS NOT NULL AND district_code IS NOT NULL AND crew_id IS NOT NULL)", name='routing_rules_district_complete'),
    sa.CheckConstraint("strategy <> 'nearest' OR value IS NOT NULL", name='routing_rules_nearest_pool'),
    sa.CheckConstraint("strategy <> 'parcel_attribute' OR (attribute IS NOT NULL AND crew_id IS NOT NULL)", name='routing_rules_parcel_complete'),
    sa.CheckConstraint("strategy IN ('district', 'parcel_attribute', 'nearest')", name='routing_rules_strategy'),
    sa.ForeignKeyConstraint(['crew_id'], ['crews.id'], ),
    sa.ForeignKeyConstraint(['service_code'], ['services.code'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('routing_rules_service', 'routing_rules', ['service_code', 'priority'], unique=False)
    op.create_geospatial_table('service_requests',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('public_id', sa.Text(), server_default=sa.text("nextval('request_number_seq')::text"), nullable=False),
    sa.Column('service_code', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), server_default='open', nullable=False),
    sa.Column('closure_reason', sa.Text(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('attributes', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('address', sa.Text(), nullable=True),
    sa.Column('address_id', sa.BigInteger(), nullable=True),
    sa.Column('parcel_id', sa.Text(), nullable=True),
    sa.Column('districts', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('crew_id', sa.Integer(), nullable=True),
    sa.Column('routed_by', sa.Text(), nullable=True),
    sa.Column('channel', sa.Text(), nullable=False),
    sa.Column('media_url', sa.Text(), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expected_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('duplicate_of', sa.BigInteger(), nullable=True),
    sa.Column('idempotency_key', sa.Text(), nullable=True),
    sa.CheckConstraint("(status = 'closed') = (closed_at IS NOT NULL)", name='service_requests_closed_at'),
    sa.CheckConstraint("closure_reason IS NULL OR closure_reason IN ('fixed', 'duplicate', 'not_found', 'referred', 'no_action')", name='service_requests_closure_reason'),
    sa.CheckConstraint("status IN ('open', 'acknowledged', 'in_progress', 'closed')", name='service_requests_status'),
    sa.CheckConstraint('length(description) <= 4000', name='service_requests_description_length'),
    sa.ForeignKeyConstraint(['crew_id'], ['crews.id'], ),
    sa.ForeignKeyConstraint(['duplicate_of'], ['service_requests.id'], ),
    sa.ForeignKeyConstraint(['service_code'], ['services.code'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key'),
    sa.UniqueConstraint('public_id')
    )
    op.create_index('service_requests_crew_status', 'service_requests', ['crew_id', 'status'], unique=False)
    op.create_geospatial_index('service_requests_geom_gist', 'service_requests', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_geospatial_index('service_requests_open_geom_gist', 'service_requests', ['geom'], unique=False, postgresql_using='gist', postgresql_where=sa.text("status <> 'closed'"), postgresql_ops={})
    op.create_index('service_requests_requested_at', 'service_requests', ['requested_at'], unique=False)
    op.create_index('service_requests_service_status', 'service_requests', ['service_code', 'status'], unique=False)
    op.create_index('service_requests_updated_at', 'service_requests', ['updated_at'], unique=False)
    op.create_table('contacts',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('request_id', sa.BigInteger(), nullable=False),
    sa.Column('first_name', sa.Text(), nullable=True),
    sa.Column('last_name', sa.Text(), nullable=True),
    sa.Column('phone', sa.Text(), nullable=True),
    sa.Column('email', sa.Text(), nullable=True),
    sa.Column('device_id', sa.Text(), nullable=True),
    sa.Column('account_id', sa.Text(), nullable=True),
    sa.Column('notify', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['service_requests.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('contacts_phone', 'contacts', ['phone'], unique=False)
    op.create_index('contacts_request', 'contacts', ['request_id'], unique=False)
    op.create_table('request_events',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('request_id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), nullable=True),
    sa.Column('public_note', sa.Text(), nullable=True),
    sa.Column('internal_note', sa.Text(), nullable=True),
    sa.Column('media', sa.Text(), nullable=True),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('actor', sa.Text(), nullable=False),
    sa.Column('idempotency_key', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['service_requests.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    op.create_index('request_events_request', 'request_events', ['request_id', 'at'], unique=False)
    # Live map updates: every new or changed request is announced on channel pin311_requests
    # (the agent console's server-sent events LISTEN to it; no polling per client).
    op.execute("""
        CREATE FUNCTION pin311_notify_request() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF current_setting('pin311.bulk', true) = 'on' THEN  -- bulk loads stay quiet
                RETURN NULL;
            END IF;
            PERFORM pg_notify('pin311_requests', json_build_object(
                'id', NEW.id, 'public_id', NEW.public_id, 'service_code', NEW.service_code,
                'status', NEW.status, 'op', TG_OP)::text);
            RETURN NULL;
        END $$""")
    op.execute("""
        CREATE TRIGGER service_requests_notify AFTER INSERT OR UPDATE OF status, crew_id, service_code
        ON service_requests FOR EACH ROW EXECUTE FUNCTION pin311_notify_request()""")


def downgrade():
    op.execute("DROP TRIGGER IF EXISTS service_requests_notify ON service_requests")
    op.execute("DROP FUNCTION IF EXISTS pin311_notify_request()")
    op.drop_index('request_events_request', table_name='request_events')
    op.drop_table('request_events')
    op.drop_index('contacts_request', table_name='contacts')
    op.drop_index('contacts_phone', table_name='contacts')
    op.drop_table('contacts')
    op.drop_index('service_requests_updated_at', table_name='service_requests')
    op.drop_index('service_requests_service_status', table_name='service_requests')
    op.drop_index('service_requests_requested_at', table_name='service_requests')
    op.drop_geospatial_index('service_requests_open_geom_gist', table_name='service_requests', postgresql_using='gist', postgresql_where=sa.text("status <> 'closed'"), column_name='geom')
    op.drop_geospatial_index('service_requests_geom_gist', table_name='service_requests', postgresql_using='gist', column_name='geom')
    op.drop_index('service_requests_crew_status', table_name='service_requests')
    op.drop_geospatial_table('service_requests')
    op.drop_index('routing_rules_service', table_name='routing_rules')
    op.drop_table('routing_rules')
    op.drop_table('services')
    op.drop_index('parcels_parcel_id', table_name='parcels')
    op.drop_geospatial_index('parcels_geom_gist', table_name='parcels', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('parcels')
    op.drop_index('districts_layer_code', table_name='districts')
    op.drop_geospatial_index('districts_geom_gist', table_name='districts', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('districts')
    op.drop_table('crew_members')
    op.drop_index('address_points_street_trgm', table_name='address_points', postgresql_using='gin', postgresql_ops={'street': 'gin_trgm_ops'})
    op.drop_index('address_points_street_number', table_name='address_points')
    op.drop_geospatial_index('address_points_geom_gist', table_name='address_points', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('address_points')
    op.drop_table('users')
    op.drop_index('outbox_pending', table_name='outbox', postgresql_where=sa.text('done_at IS NULL'))
    op.drop_table('outbox')
    op.drop_table('layers')
    op.drop_index('crews_position_gist', table_name='crews', postgresql_using='gist')
    op.drop_geospatial_table('crews')
    op.drop_table('api_keys')
    op.execute("DROP SEQUENCE IF EXISTS request_number_seq")
