import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegistrationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REGISTRATION_STATUS_UNSPECIFIED: _ClassVar[RegistrationStatus]
    REGISTRATION_STATUS_PENDING_VERIFICATION: _ClassVar[RegistrationStatus]
    REGISTRATION_STATUS_ACTIVE: _ClassVar[RegistrationStatus]
    REGISTRATION_STATUS_EXPIRED: _ClassVar[RegistrationStatus]

class DeliveryStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_STATUS_UNSPECIFIED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_PENDING: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_SENT: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_FAILED: _ClassVar[DeliveryStatus]

class DeliveryProblem(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_PROBLEM_UNSPECIFIED: _ClassVar[DeliveryProblem]
    DELIVERY_PROBLEM_ADDRESS_REFUSED: _ClassVar[DeliveryProblem]
    DELIVERY_PROBLEM_PREPARING: _ClassVar[DeliveryProblem]
    DELIVERY_PROBLEM_REPLACED: _ClassVar[DeliveryProblem]
    DELIVERY_PROBLEM_SERVER_UNREACHABLE: _ClassVar[DeliveryProblem]

class EmailKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EMAIL_KIND_UNSPECIFIED: _ClassVar[EmailKind]
    EMAIL_KIND_VERIFICATION: _ClassVar[EmailKind]
    EMAIL_KIND_WELCOME: _ClassVar[EmailKind]
    EMAIL_KIND_REGISTRATION_ATTEMPT: _ClassVar[EmailKind]
    EMAIL_KIND_REMINDER: _ClassVar[EmailKind]
    EMAIL_KIND_PASSWORD_RESET: _ClassVar[EmailKind]
    EMAIL_KIND_PASSWORD_CHANGED: _ClassVar[EmailKind]
    EMAIL_KIND_ENROLLMENT: _ClassVar[EmailKind]
REGISTRATION_STATUS_UNSPECIFIED: RegistrationStatus
REGISTRATION_STATUS_PENDING_VERIFICATION: RegistrationStatus
REGISTRATION_STATUS_ACTIVE: RegistrationStatus
REGISTRATION_STATUS_EXPIRED: RegistrationStatus
DELIVERY_STATUS_UNSPECIFIED: DeliveryStatus
DELIVERY_STATUS_PENDING: DeliveryStatus
DELIVERY_STATUS_SENT: DeliveryStatus
DELIVERY_STATUS_FAILED: DeliveryStatus
DELIVERY_PROBLEM_UNSPECIFIED: DeliveryProblem
DELIVERY_PROBLEM_ADDRESS_REFUSED: DeliveryProblem
DELIVERY_PROBLEM_PREPARING: DeliveryProblem
DELIVERY_PROBLEM_REPLACED: DeliveryProblem
DELIVERY_PROBLEM_SERVER_UNREACHABLE: DeliveryProblem
EMAIL_KIND_UNSPECIFIED: EmailKind
EMAIL_KIND_VERIFICATION: EmailKind
EMAIL_KIND_WELCOME: EmailKind
EMAIL_KIND_REGISTRATION_ATTEMPT: EmailKind
EMAIL_KIND_REMINDER: EmailKind
EMAIL_KIND_PASSWORD_RESET: EmailKind
EMAIL_KIND_PASSWORD_CHANGED: EmailKind
EMAIL_KIND_ENROLLMENT: EmailKind

class RegisterUserRequest(_message.Message):
    __slots__ = ("email", "password")
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    email: str
    password: str
    def __init__(self, email: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class RegisterUserResponse(_message.Message):
    __slots__ = ("registration_id", "status", "expires_at")
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    registration_id: str
    status: RegistrationStatus
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, registration_id: _Optional[str] = ..., status: _Optional[_Union[RegistrationStatus, str]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class VerifyEmailRequest(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    def __init__(self, token: _Optional[str] = ...) -> None: ...

class VerifyEmailResponse(_message.Message):
    __slots__ = ("registration_id", "user_id", "status", "already_verified")
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ALREADY_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    registration_id: str
    user_id: str
    status: RegistrationStatus
    already_verified: bool
    def __init__(self, registration_id: _Optional[str] = ..., user_id: _Optional[str] = ..., status: _Optional[_Union[RegistrationStatus, str]] = ..., already_verified: _Optional[bool] = ...) -> None: ...

class ConfirmRegistrationRequest(_message.Message):
    __slots__ = ("registration_id",)
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    registration_id: str
    def __init__(self, registration_id: _Optional[str] = ...) -> None: ...

class ConfirmRegistrationResponse(_message.Message):
    __slots__ = ("registration_id", "user_id", "status", "already_verified")
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ALREADY_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    registration_id: str
    user_id: str
    status: RegistrationStatus
    already_verified: bool
    def __init__(self, registration_id: _Optional[str] = ..., user_id: _Optional[str] = ..., status: _Optional[_Union[RegistrationStatus, str]] = ..., already_verified: _Optional[bool] = ...) -> None: ...

class ResendVerificationEmailRequest(_message.Message):
    __slots__ = ("registration_id",)
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    registration_id: str
    def __init__(self, registration_id: _Optional[str] = ...) -> None: ...

class ResendVerificationEmailResponse(_message.Message):
    __slots__ = ("registration_id", "next_resend_allowed_at", "resends_remaining")
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    NEXT_RESEND_ALLOWED_AT_FIELD_NUMBER: _ClassVar[int]
    RESENDS_REMAINING_FIELD_NUMBER: _ClassVar[int]
    registration_id: str
    next_resend_allowed_at: _timestamp_pb2.Timestamp
    resends_remaining: int
    def __init__(self, registration_id: _Optional[str] = ..., next_resend_allowed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resends_remaining: _Optional[int] = ...) -> None: ...

class GetRegistrationStatusRequest(_message.Message):
    __slots__ = ("registration_id",)
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    registration_id: str
    def __init__(self, registration_id: _Optional[str] = ...) -> None: ...

class GetRegistrationStatusResponse(_message.Message):
    __slots__ = ("status", "verification_email", "verification_email_problem", "next_resend_allowed_at", "resends_remaining")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_EMAIL_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_EMAIL_PROBLEM_FIELD_NUMBER: _ClassVar[int]
    NEXT_RESEND_ALLOWED_AT_FIELD_NUMBER: _ClassVar[int]
    RESENDS_REMAINING_FIELD_NUMBER: _ClassVar[int]
    status: RegistrationStatus
    verification_email: DeliveryStatus
    verification_email_problem: DeliveryProblem
    next_resend_allowed_at: _timestamp_pb2.Timestamp
    resends_remaining: int
    def __init__(self, status: _Optional[_Union[RegistrationStatus, str]] = ..., verification_email: _Optional[_Union[DeliveryStatus, str]] = ..., verification_email_problem: _Optional[_Union[DeliveryProblem, str]] = ..., next_resend_allowed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resends_remaining: _Optional[int] = ...) -> None: ...

class GetRegistrationRequest(_message.Message):
    __slots__ = ("registration_id",)
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    registration_id: str
    def __init__(self, registration_id: _Optional[str] = ...) -> None: ...

class GetRegistrationResponse(_message.Message):
    __slots__ = ("registration",)
    REGISTRATION_FIELD_NUMBER: _ClassVar[int]
    registration: Registration
    def __init__(self, registration: _Optional[_Union[Registration, _Mapping]] = ...) -> None: ...

class Registration(_message.Message):
    __slots__ = ("registration_id", "user_id", "email", "status", "created_at", "verified_at", "expires_at", "deliveries", "next_resend_allowed_at", "resends_remaining")
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_RESEND_ALLOWED_AT_FIELD_NUMBER: _ClassVar[int]
    RESENDS_REMAINING_FIELD_NUMBER: _ClassVar[int]
    registration_id: str
    user_id: str
    email: str
    status: RegistrationStatus
    created_at: _timestamp_pb2.Timestamp
    verified_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    deliveries: _containers.RepeatedCompositeFieldContainer[EmailDelivery]
    next_resend_allowed_at: _timestamp_pb2.Timestamp
    resends_remaining: int
    def __init__(self, registration_id: _Optional[str] = ..., user_id: _Optional[str] = ..., email: _Optional[str] = ..., status: _Optional[_Union[RegistrationStatus, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., verified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deliveries: _Optional[_Iterable[_Union[EmailDelivery, _Mapping]]] = ..., next_resend_allowed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resends_remaining: _Optional[int] = ...) -> None: ...

class EmailDelivery(_message.Message):
    __slots__ = ("kind", "status", "attempts", "last_error", "sent_at", "created_at", "message_id")
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    kind: EmailKind
    status: DeliveryStatus
    attempts: int
    last_error: str
    sent_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    message_id: str
    def __init__(self, kind: _Optional[_Union[EmailKind, str]] = ..., status: _Optional[_Union[DeliveryStatus, str]] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., sent_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message_id: _Optional[str] = ...) -> None: ...

class AuthenticateRequest(_message.Message):
    __slots__ = ("email", "password")
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    email: str
    password: str
    def __init__(self, email: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class AuthenticateResponse(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class RequestPasswordResetRequest(_message.Message):
    __slots__ = ("email",)
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    email: str
    def __init__(self, email: _Optional[str] = ...) -> None: ...

class RequestPasswordResetResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResetPasswordRequest(_message.Message):
    __slots__ = ("token", "new_password")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    NEW_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    token: str
    new_password: str
    def __init__(self, token: _Optional[str] = ..., new_password: _Optional[str] = ...) -> None: ...

class ResetPasswordResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NotifyEnrollmentRequest(_message.Message):
    __slots__ = ("order_id", "organizer_email", "organizer_name", "enrollee_name", "offering_name", "enrollee_email", "enrolled_at")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZER_EMAIL_FIELD_NUMBER: _ClassVar[int]
    ORGANIZER_NAME_FIELD_NUMBER: _ClassVar[int]
    ENROLLEE_NAME_FIELD_NUMBER: _ClassVar[int]
    OFFERING_NAME_FIELD_NUMBER: _ClassVar[int]
    ENROLLEE_EMAIL_FIELD_NUMBER: _ClassVar[int]
    ENROLLED_AT_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    organizer_email: str
    organizer_name: str
    enrollee_name: str
    offering_name: str
    enrollee_email: str
    enrolled_at: _timestamp_pb2.Timestamp
    def __init__(self, order_id: _Optional[str] = ..., organizer_email: _Optional[str] = ..., organizer_name: _Optional[str] = ..., enrollee_name: _Optional[str] = ..., offering_name: _Optional[str] = ..., enrollee_email: _Optional[str] = ..., enrolled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class NotifyEnrollmentResponse(_message.Message):
    __slots__ = ("notification_id",)
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    notification_id: str
    def __init__(self, notification_id: _Optional[str] = ...) -> None: ...

class GetNotificationRequest(_message.Message):
    __slots__ = ("notification_id",)
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    notification_id: str
    def __init__(self, notification_id: _Optional[str] = ...) -> None: ...

class GetNotificationResponse(_message.Message):
    __slots__ = ("notification",)
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    notification: Notification
    def __init__(self, notification: _Optional[_Union[Notification, _Mapping]] = ...) -> None: ...

class Notification(_message.Message):
    __slots__ = ("notification_id", "kind", "order_id", "recipient", "created_at", "delivery")
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    notification_id: str
    kind: EmailKind
    order_id: str
    recipient: str
    created_at: _timestamp_pb2.Timestamp
    delivery: EmailDelivery
    def __init__(self, notification_id: _Optional[str] = ..., kind: _Optional[_Union[EmailKind, str]] = ..., order_id: _Optional[str] = ..., recipient: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delivery: _Optional[_Union[EmailDelivery, _Mapping]] = ...) -> None: ...
