"""The pin311 data model (DESIGN.md, "Data model").

Plain SQLAlchemy 2 declarative classes with GeoAlchemy2 geometry columns; no Flask here, so the CLI,
the worker and the tests use the same model. The schema itself only changes through Alembic
migrations in migrations/versions; these classes must describe what the migrations build.

Geometry is stored in EPSG:4326. Metric work (buffers, distances) casts to geography.
"""
from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    ARRAY, BigInteger, Boolean, CheckConstraint, Computed, DateTime, ForeignKey, Index, Integer, SmallInteger, Text,
    func, text,
)
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SRID = 4326
STATUSES = ("open", "acknowledged", "in_progress", "closed")
CLOSURE_REASONS = ("fixed", "duplicate", "not_found", "referred", "no_action")
LAYER_KINDS = ("boundary", "district", "parcel", "address")
ROLES = ("agent", "supervisor", "crew", "analyst", "admin")
STRATEGIES = ("district", "parcel_attribute", "nearest")


def _in(column, values):
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    pass


class Layer(Base):
    """A named spatial layer; its features live in districts, parcels or address_points by kind."""
    __tablename__ = "layers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    kind: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    source_srid: Mapped[int | None] = mapped_column(Integer)
    code_field: Mapped[str | None] = mapped_column(Text)
    name_field: Mapped[str | None] = mapped_column(Text)
    feature_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    loaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    __table_args__ = (
        CheckConstraint(_in("kind", LAYER_KINDS), name="layers_kind"),
        CheckConstraint("name ~ '^[a-z][a-z0-9_]{0,62}$'", name="layers_name_slug"),
    )


class District(Base):
    """A polygon of a boundary or district layer (ward 6, police district C6, the city itself)."""
    __tablename__ = "districts"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    layer_id: Mapped[int] = mapped_column(ForeignKey("layers.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False), nullable=False)
    __table_args__ = (
        Index("districts_geom_gist", "geom", postgresql_using="gist"),
        Index("districts_layer_code", "layer_id", "code"),
    )


class DistrictPart(Base):
    """A piece (at most 64 vertices) of a district or boundary polygon, with its layer and codes copied, so
    a point lookup reads one small row (migration 0019; triggers on districts and layers keep it equal)."""
    __tablename__ = "district_parts"
    district_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("districts.id", ondelete="CASCADE"),
                                             primary_key=True)
    part: Mapped[int] = mapped_column(Integer, primary_key=True)
    layer: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    code: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    geom = mapped_column(Geometry("POLYGON", srid=SRID, spatial_index=False), nullable=False)
    __table_args__ = (Index("district_parts_geom_gist", "geom", postgresql_using="gist"),)


class Parcel(Base):
    __tablename__ = "parcels"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    layer_id: Mapped[int] = mapped_column(ForeignKey("layers.id", ondelete="CASCADE"))
    parcel_id: Mapped[str] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False), nullable=False)
    __table_args__ = (
        Index("parcels_geom_gist", "geom", postgresql_using="gist"),
        Index("parcels_parcel_id", "parcel_id"),
    )


class AddressPoint(Base):
    """One entry of the address gazetteer. `street` is the normalised street name ("E 4TH ST")."""
    __tablename__ = "address_points"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    layer_id: Mapped[int] = mapped_column(ForeignKey("layers.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(Text)
    number: Mapped[int | None] = mapped_column(Integer)
    number_text: Mapped[str | None] = mapped_column(Text)
    street: Mapped[str] = mapped_column(Text)
    unit: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text)
    zip: Mapped[str | None] = mapped_column(Text)
    parcel_id: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False), nullable=False)
    __table_args__ = (
        Index("address_points_geom_gist", "geom", postgresql_using="gist"),
        Index("address_points_street_number", "street", "number"),
        Index("address_points_street_trgm", "street", postgresql_using="gin",
              postgresql_ops={"street": "gin_trgm_ops"}),
    )


class Service(Base):
    """A request category; `attributes` holds its Open311 attribute definitions."""
    __tablename__ = "services"
    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    group_name: Mapped[str | None] = mapped_column(Text)
    department: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    keywords: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    attributes: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    sla_hours: Mapped[int | None] = mapped_column(Integer)
    public: Mapped[bool] = mapped_column(Boolean, server_default="true")
    sensitive: Mapped[bool] = mapped_column(Boolean, server_default="false")
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    default_crew_id: Mapped[int | None] = mapped_column(ForeignKey("crews.id"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    __table_args__ = (CheckConstraint("code ~ '^[A-Za-z0-9_.-]{1,64}$'", name="services_code_chars"),)


class Crew(Base):
    __tablename__ = "crews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    department: Mapped[str | None] = mapped_column(Text)
    contact: Mapped[str | None] = mapped_column(Text)
    on_duty: Mapped[bool] = mapped_column(Boolean, server_default="true")
    last_position = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False))
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (Index("crews_position_gist", text("(last_position::geography)"),
                            postgresql_using="gist"),)


class RoutingRule(Base):
    """Which crew gets a service's requests: by district, by parcel attribute or nearest crew."""
    __tablename__ = "routing_rules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_code: Mapped[str] = mapped_column(ForeignKey("services.code", ondelete="CASCADE"))
    strategy: Mapped[str] = mapped_column(Text)
    layer: Mapped[str | None] = mapped_column(Text)
    district_code: Mapped[str | None] = mapped_column(Text)
    attribute: Mapped[str | None] = mapped_column(Text)
    value: Mapped[str | None] = mapped_column(Text)
    crew_id: Mapped[int | None] = mapped_column(ForeignKey("crews.id"))
    priority: Mapped[int] = mapped_column(Integer, server_default="100")
    __table_args__ = (
        CheckConstraint(_in("strategy", STRATEGIES), name="routing_rules_strategy"),
        CheckConstraint("strategy <> 'district' OR (layer IS NOT NULL AND district_code IS NOT NULL"
                        " AND crew_id IS NOT NULL)", name="routing_rules_district_complete"),
        CheckConstraint("strategy <> 'parcel_attribute' OR (attribute IS NOT NULL AND crew_id IS NOT NULL)",
                        name="routing_rules_parcel_complete"),
        CheckConstraint("strategy <> 'nearest' OR value IS NOT NULL", name="routing_rules_nearest_pool"),
        Index("routing_rules_service", "service_code", "priority"),
    )


class ServiceRequest(Base):
    __tablename__ = "service_requests"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # Digits only, so a caller can key it on a phone; new ones come from request_number_seq.
    public_id: Mapped[str] = mapped_column(
        Text, unique=True, server_default=text("nextval('request_number_seq')::text"))
    service_code: Mapped[str] = mapped_column(ForeignKey("services.code"))
    status: Mapped[str] = mapped_column(Text, server_default="open")
    closure_reason: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False), nullable=False)
    address: Mapped[str | None] = mapped_column(Text)        # the gazetteer's (or the City record's)
    address_note: Mapped[str | None] = mapped_column(Text)   # the caller's own words: staff only
    address_id: Mapped[int | None] = mapped_column(BigInteger)
    parcel_id: Mapped[str | None] = mapped_column(Text)
    districts: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    crew_id: Mapped[int | None] = mapped_column(ForeignKey("crews.id"))
    routed_by: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(Text)
    media_url: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("service_requests.id"))
    idempotency_key: Mapped[str | None] = mapped_column(Text, unique=True)
    __table_args__ = (
        CheckConstraint(_in("status", STATUSES), name="service_requests_status"),
        CheckConstraint(f"closure_reason IS NULL OR {_in('closure_reason', CLOSURE_REASONS)}",
                        name="service_requests_closure_reason"),
        CheckConstraint("(status = 'closed') = (closed_at IS NOT NULL)", name="service_requests_closed_at"),
        CheckConstraint("length(description) <= 4000", name="service_requests_description_length"),
        Index("service_requests_geom_gist", "geom", postgresql_using="gist"),
        # The crew view and duplicate search only ever look at open work: keep that index small.
        Index("service_requests_open_geom_gist", "geom", postgresql_using="gist",
              postgresql_where=text("status <> 'closed'")),
        Index("service_requests_requested_at", "requested_at"),
        Index("service_requests_updated_at", "updated_at"),
        Index("service_requests_service_status", "service_code", "status"),
        Index("service_requests_crew_status", "crew_id", "status"),
    )


class RequestEvent(Base):
    """Every change to a request is a row here (FixMyStreet's comment table)."""
    __tablename__ = "request_events"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("service_requests.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(Text)
    public_note: Mapped[str | None] = mapped_column(Text)
    internal_note: Mapped[str | None] = mapped_column(Text)
    media: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    actor: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(Text, unique=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    __table_args__ = (Index("request_events_request", "request_id", "at"),)


class Contact(Base):
    """Personal data of a caller, kept apart; never joined into a public output."""
    __tablename__ = "contacts"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("service_requests.id", ondelete="CASCADE"))
    first_name: Mapped[str | None] = mapped_column(Text)
    last_name: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    device_id: Mapped[str | None] = mapped_column(Text)
    account_id: Mapped[str | None] = mapped_column(Text)
    notify: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    __table_args__ = (Index("contacts_phone", "phone"), Index("contacts_request", "request_id"))


class Outbox(Base):
    """Work for background jobs (notify, publish), written in the same transaction as the change."""
    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    topic: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict] = mapped_column(JSONB)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_try: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    __table_args__ = (Index("outbox_pending", "topic", "next_try", postgresql_where=text("done_at IS NULL")),)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(Text, unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    full_name: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="users_role"),)


class CrewMember(Base):
    __tablename__ = "crew_members"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    crew_id: Mapped[int] = mapped_column(ForeignKey("crews.id", ondelete="CASCADE"), primary_key=True)


class ApiKey(Base):
    """Open311 API keys; only a SHA-256 of the key is stored."""
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    prefix: Mapped[str] = mapped_column(Text)
    key_hash: Mapped[str] = mapped_column(Text, unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{open311:write}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# --- migration 0003 (issue 8): counters per data source, bumped by triggers at commit; map caches key
# on their sum. Migration 0016 spread each source over slots (one bumped at random per transaction).
# The public view `public_requests` of 0003 is described in gis/public.py.
class DataVersion(Base):
    __tablename__ = "data_versions"
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    slot: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default="0")
    version: Mapped[int] = mapped_column(BigInteger, server_default="0")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# The public point (snapped for sensitive services): since migration 0018 generated from the point and
# the request's copy of its service's `sensitive` flag, which a composite foreign key holds equal to the
# service's (ON UPDATE CASCADE). Read it only through the public_requests view.
ServiceRequest.sensitive = mapped_column(Boolean, nullable=False)
ServiceRequest.public_geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False),
                                           Computed("pin311_public_point(geom, sensitive)", persisted=True))
Index("service_requests_public_geom_gist", ServiceRequest.__table__.c.public_geom, postgresql_using="gist")


# --- migration 0007 (issue 4): the self-referencing duplicate_of key, indexed so deletes stay fast.
Index("service_requests_duplicate_of", ServiceRequest.duplicate_of,
      postgresql_where=ServiceRequest.duplicate_of.isnot(None))


# --- migration 0006 (issue 9): what `pin311 arcgis publish` made on each portal (gis/arcgis_publish.py).
class ArcGISItem(Base):
    __tablename__ = "arcgis_items"
    portal_url: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    item_id: Mapped[str] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# --- migration 0008 (issue 10): who viewed or changed a contact (gis/audit.py). No foreign keys: the
# trail outlives the request and contact it speaks of. Field names only, never values.
class ContactAudit(Base):
    __tablename__ = "contact_audit"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    request_id: Mapped[int | None] = mapped_column(BigInteger)
    contact_id: Mapped[int | None] = mapped_column(BigInteger)
    fields: Mapped[list] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    context: Mapped[str | None] = mapped_column(Text)
    ip = mapped_column(INET)
    __table_args__ = (
        CheckConstraint("action IN ('view', 'create', 'update', 'delete', 'export')", name="contact_audit_action"),
        Index("contact_audit_request", "request_id", "at"),
        Index("contact_audit_actor", "actor", "at"),
    )


# --- migration 0010: deliveries to callers, SMS opt-outs --------------------------------------------

class Notification(Base):
    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("request_events.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="sending")
    provider_id: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SmsOptout(Base):
    __tablename__ = "sms_optouts"
    phone: Mapped[str] = mapped_column(Text, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# --- migration 0009: area sweeps ---------------------------------------------------------------------

from datetime import date  # noqa: E402  (kept with the section it serves)

from sqlalchemy import Date  # noqa: E402


class Sweep(Base):
    __tablename__ = "sweeps"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    crew_id: Mapped[int] = mapped_column(ForeignKey("crews.id"))
    target_date: Mapped[date] = mapped_column(Date)
    area = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False), nullable=False)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SweepRequest(Base):
    __tablename__ = "sweep_requests"
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("service_requests.id", ondelete="CASCADE"), primary_key=True)
    __table_args__ = (Index("sweep_requests_request", "request_id"),)


# --- migration 0017: staff sign-in sessions (gis/sessions.py). Only a SHA-256 of the cookie's token is
# kept; a trigger on users revokes an account's sessions when its password changes or it is deactivated.
class StaffSession(Base):
    __tablename__ = "staff_sessions"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    address = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(Text)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (Index("staff_sessions_user_live", "user_id", postgresql_where=text("revoked_at IS NULL")),)


__all__ = [name for name in dir() if name[:1].isupper()]
