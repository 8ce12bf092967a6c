"""Build real neonize event protobufs (MessageEv, HistorySyncEv, ReceiptEv, group events, ...).

Used by the simulator transport, the tests and the benchmarks, so every code path downstream of the
transport sees exactly the bytes the real library would hand over. Nothing here touches the
database. JIDs may be given as strings ("5511987654321@s.whatsapp.net", "1234:5@lid") or as neonize
``JID`` messages; ``None``/"" is the empty JID.

    ev = message_ev("5511987654321@s.whatsapp.net", "5511987654321@s.whatsapp.net", "3EB0AA", "oi",
                    1_760_000_000_123, sender_alt="123456789@lid", push_name="Ana")
    name, data = serialize(ev)      # ("MessageEv", b"...")
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from neonize import events as nev
from neonize.proto import Neonize_pb2 as N
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as E
from neonize.proto.waHistorySync import WAWebProtobufsHistorySync_pb2 as H
from neonize.proto.waWeb.WAWebProtobufsWeb_pb2 import WebMessageInfo

Message = E.Message

# neonize event class name -> class, for every event class neonize exports.
EVENT_CLASSES: dict[str, type] = {
    name: getattr(nev, name) for name in dir(nev) if name.endswith("Ev") and hasattr(getattr(nev, name), "FromString")
}
_NAME_BY_DESCRIPTOR = {cls.DESCRIPTOR.full_name: name for name, cls in EVENT_CLASSES.items()}


def event_name(ev) -> str:
    """The neonize event class name ("MessageEv", ...) of an event protobuf."""
    try:
        return _NAME_BY_DESCRIPTOR[ev.DESCRIPTOR.full_name]
    except KeyError:
        raise ValueError(f"{ev.DESCRIPTOR.full_name} is not a neonize event class") from None


def serialize(ev) -> tuple[str, bytes]:
    """(event name, protobuf bytes): the pair the journal and capture files store."""
    return event_name(ev), ev.SerializeToString()


# --- JIDs ---------------------------------------------------------------------------------------


def jid(value: str | N.JID | None = None, server: str | None = None) -> N.JID:
    """A neonize JID from "user[:device]@server" (or user + server); empty for None/""."""
    if isinstance(value, N.JID):
        return value
    value = value or ""
    if server is None:
        user, _, server = value.partition("@") if "@" in value else ("", "", value)
    else:
        user = value
    device = 0
    if ":" in user:
        user, _, dev = user.partition(":")
        device = int(dev or 0)
    return N.JID(User=user, Server=server, Device=device, RawAgent=0, Integrator=0, IsEmpty=not (user or server))


def jid_str(j: N.JID | str | None) -> str:
    if j is None or isinstance(j, str):
        return j or ""
    if not j.User and not j.Server:
        return ""
    user = f"{j.User}:{j.Device}" if j.Device else j.User
    return f"{user}@{j.Server}" if user else j.Server


# --- Message content ----------------------------------------------------------------------------


def text(body: str) -> Message:
    return Message(conversation=body)


def extended_text(body: str, quoted_id: str = "", quoted_text: str = "", quoted_participant: str = "") -> Message:
    ctx = None
    if quoted_id:
        ctx = E.ContextInfo(stanzaID=quoted_id, participant=quoted_participant or None,
                            quotedMessage=Message(conversation=quoted_text) if quoted_text else None)
    return Message(extendedTextMessage=E.ExtendedTextMessage(text=body, contextInfo=ctx))


def image(mimetype="image/jpeg", size=1234, caption="") -> Message:
    return Message(imageMessage=E.ImageMessage(mimetype=mimetype, fileLength=size, caption=caption))


def video(mimetype="video/mp4", size=123456, caption="", seconds=3) -> Message:
    return Message(videoMessage=E.VideoMessage(mimetype=mimetype, fileLength=size, caption=caption, seconds=seconds))


def audio(mimetype="audio/ogg; codecs=opus", size=2345, seconds=4, ptt=True) -> Message:
    return Message(audioMessage=E.AudioMessage(mimetype=mimetype, fileLength=size, seconds=seconds, PTT=ptt))


def document(file_name="file.pdf", mimetype="application/pdf", size=4567, caption="", title="") -> Message:
    return Message(documentMessage=E.DocumentMessage(fileName=file_name, mimetype=mimetype, fileLength=size,
                                                     caption=caption, title=title or file_name))


def sticker(mimetype="image/webp", size=890) -> Message:
    return Message(stickerMessage=E.StickerMessage(mimetype=mimetype, fileLength=size))


def contact_card(display_name: str, vcard: str) -> Message:
    return Message(contactMessage=E.ContactMessage(displayName=display_name, vcard=vcard))


def location(lat: float, lng: float, name="", address="") -> Message:
    return Message(locationMessage=E.LocationMessage(degreesLatitude=lat, degreesLongitude=lng, name=name, address=address))


def reaction(target_id: str, emoji: str, target_chat: str = "", target_from_me: bool = False, target_participant="") -> Message:
    key = MessageKey(remoteJID=jid_str(target_chat), fromMe=target_from_me, ID=target_id,
                     participant=jid_str(target_participant) or None)
    return Message(reactionMessage=E.ReactionMessage(key=key, text=emoji))


def revoke(target_id: str, target_chat: str = "", target_from_me: bool = False) -> Message:
    key = MessageKey(remoteJID=jid_str(target_chat), fromMe=target_from_me, ID=target_id)
    return Message(protocolMessage=E.ProtocolMessage(key=key, type=E.ProtocolMessage.REVOKE))


def edit(target_id: str, new_body: str, target_chat: str = "", target_from_me: bool = True, timestamp_ms: int = 0) -> Message:
    key = MessageKey(remoteJID=jid_str(target_chat), fromMe=target_from_me, ID=target_id)
    return Message(protocolMessage=E.ProtocolMessage(
        key=key, type=E.ProtocolMessage.MESSAGE_EDIT, editedMessage=Message(conversation=new_body),
        timestampMS=timestamp_ms or None,
    ))


def ephemeral(inner: Message) -> Message:
    return Message(ephemeralMessage=E.FutureProofMessage(message=inner))


def view_once(inner: Message) -> Message:
    return Message(viewOnceMessage=E.FutureProofMessage(message=inner))


def device_sent(inner: Message, destination: str) -> Message:
    return Message(deviceSentMessage=E.DeviceSentMessage(destinationJID=jid_str(destination), message=inner))


def unsupported_poll(question: str) -> Message:
    return Message(pollCreationMessage=E.PollCreationMessage(name=question))


_MEDIA_CLASSES = {"image": ("imageMessage", "ImageMessage"), "video": ("videoMessage", "VideoMessage"),
                  "audio": ("audioMessage", "AudioMessage"), "document": ("documentMessage", "DocumentMessage"),
                  "sticker": ("stickerMessage", "StickerMessage")}


def media_message(kind: str, *, mimetype: str, size: int, direct_path: str, file_sha256: bytes = b"",
                  media_key: bytes = b"", caption: str = "", file_name: str = "", seconds: int = 0,
                  ptt: bool = False) -> Message:
    """A media message as WhatsApp delivers it: where the file is (``directPath``), its key and hashes.
    ``kind``: image, video, audio, document or sticker."""
    field_name, class_name = _MEDIA_CLASSES[kind]
    fields = {"mimetype": mimetype, "fileLength": size, "directPath": direct_path, "fileSHA256": file_sha256,
              "mediaKey": media_key, "fileEncSHA256": file_sha256, "mediaKeyTimestamp": 1_760_000_000}
    if caption and kind in ("image", "video", "document"):
        fields["caption"] = caption
    if kind == "document":
        fields.update(fileName=file_name or "file", title=file_name or "file")
    if seconds and kind in ("audio", "video"):
        fields["seconds"] = seconds
    if kind == "audio":
        fields["PTT"] = ptt
    return Message(**{field_name: getattr(E, class_name)(**fields)})


def _content(body) -> Message:
    if body is None:
        return Message()
    if isinstance(body, str):
        return text(body)
    return body


# --- Events -------------------------------------------------------------------------------------


def message_source(chat, sender, *, from_me=False, is_group=None, sender_alt=None, recipient_alt=None,
                   addressing_mode=None) -> N.MessageSource:
    chat_j, sender_j = jid(chat), jid(sender)
    if is_group is None:
        is_group = chat_j.Server == "g.us"
    if addressing_mode is None:
        addressing_mode = N.AddressingMode.LID if sender_j.Server == "lid" else N.AddressingMode.PN
    return N.MessageSource(Chat=chat_j, Sender=sender_j, IsFromMe=from_me, IsGroup=is_group,
                           AddressingMode=addressing_mode, SenderAlt=jid(sender_alt), RecipientAlt=jid(recipient_alt),
                           BroadcastListOwner=jid())


def message_ev(chat, sender, id: str, text: str | Message | None = "", timestamp_ms: int = 1_760_000_000_000,
               from_me: bool = False, sender_alt=None, push_name: str = "", *, recipient_alt=None,
               is_group=None, is_edit=False, edit_attr="") -> N.Message:
    """A MessageEv as neonize delivers it. ``text`` is a str (plain conversation) or a built Message.

    Incoming 1:1: chat = sender. Sent from the phone: from_me=True, chat = the recipient, sender = you.
    Group: chat = "...@g.us", sender = the participant.
    """
    content = _content(text)
    info = N.MessageInfo(
        MessageSource=message_source(chat, sender, from_me=from_me, is_group=is_group, sender_alt=sender_alt,
                                     recipient_alt=recipient_alt),
        ID=id, ServerID=0, Type="media" if _is_media(content) else "text", Pushname=push_name,
        Timestamp=int(timestamp_ms), Category="", Multicast=False, MediaType="", Edit=edit_attr,
    )
    return N.Message(Info=info, Message=content, IsEphemeral=False, IsViewOnce=False, IsViewOnceV2=False,
                     IsViewOnceV2Extension=False, IsDocumentWithCaption=False, IsLottieSticker=False, IsEdit=is_edit,
                     UnavailableRequestID="", RetryCount=0, Raw=content)


def _is_media(m: Message) -> bool:
    return any(m.HasField(f) for f in ("imageMessage", "videoMessage", "audioMessage", "documentMessage", "stickerMessage"))


_RECEIPT_TYPES = {name.lower(): value for name, value in N.Receipt.ReceiptType.items()}


def receipt_ev(chat, ids: Sequence[str] | str, type: str | int = "read", ts: int = 1_760_000_100, *, sender=None,
               from_me=False, sender_alt=None) -> N.Receipt:
    """A ReceiptEv for our outbound message(s) ``ids`` in ``chat``; ``type`` "delivered"/"read"/"played"."""
    if isinstance(ids, str):
        ids = [ids]
    rtype = _RECEIPT_TYPES[type.lower()] if isinstance(type, str) else type
    return N.Receipt(MessageSource=message_source(chat, sender or chat, from_me=from_me, sender_alt=sender_alt),
                     MessageIDs=list(ids), Timestamp=int(ts), Type=rtype)


def web_message(remote_jid, id: str, body: str | Message | None = "", timestamp_s: int = 1_760_000_000, *,
                from_me=False, participant="", push_name="", status: str | int | None = None) -> WebMessageInfo:
    """A history-sync WebMessageInfo (timestamps in SECONDS, as WhatsApp sends them)."""
    if isinstance(status, str):
        status = WebMessageInfo.Status.Value(status.upper())
    key = MessageKey(remoteJID=jid_str(remote_jid), fromMe=from_me, ID=id, participant=jid_str(participant) or None)
    return WebMessageInfo(key=key, message=_content(body), messageTimestamp=int(timestamp_s),
                          participant=jid_str(participant) or None, pushName=push_name or None, status=status)


def history_conversation(chat, messages: Iterable[WebMessageInfo] = (), *, name="", pn_jid="", lid_jid="",
                         unread_count=None, display_name="") -> H.Conversation:
    return H.Conversation(
        ID=jid_str(chat), messages=[H.HistorySyncMsg(message=m, msgOrderID=i) for i, m in enumerate(messages, 1)],
        name=name or None, displayName=display_name or None, pnJID=jid_str(pn_jid) or None,
        lidJID=jid_str(lid_jid) or None, unreadCount=unread_count,
    )


def history_sync_ev(conversations: Iterable[H.Conversation] = (), sync_type: str | int = "INITIAL_BOOTSTRAP", *,
                    chunk_order: int | None = None, progress: int | None = None,
                    pushnames: Iterable[tuple[str, str]] = (), mappings: Iterable[tuple[str, str]] = ()) -> N.HistorySync:
    """A HistorySyncEv. ``pushnames`` are (jid, name); ``mappings`` are (pn jid, lid jid)."""
    if isinstance(sync_type, str):
        sync_type = H.HistorySync.HistorySyncType.Value(sync_type.upper())
    data = H.HistorySync(
        syncType=sync_type, conversations=list(conversations), chunkOrder=chunk_order, progress=progress,
        pushnames=[H.Pushname(ID=jid_str(j), pushname=n) for j, n in pushnames],
        phoneNumberToLidMappings=[H.PhoneNumberToLIDMapping(pnJID=jid_str(p), lidJID=jid_str(lid)) for p, lid in mappings],
    )
    return N.HistorySync(Data=data)


def group_participant(member, *, lid=None, phone=None, is_admin=False, display_name="") -> N.GroupParticipant:
    return N.GroupParticipant(JID=jid(member), LID=jid(lid), PhoneNumber=jid(phone), IsAdmin=is_admin,
                              IsSuperAdmin=False, DisplayName=display_name, Error=0)


def group_info(group, name: str, participants: Iterable[N.GroupParticipant] = (), owner=None, created_s=1_700_000_000):
    empty = jid()
    return N.GroupInfo(
        OwnerJID=jid(owner), JID=jid(group), OwnerPN=empty,
        GroupName=N.GroupName(Name=name, NameSetAt=created_s, NameSetBy=jid(owner)),
        GroupTopic=N.GroupTopic(Topic="", TopicID="", TopicSetAt=0, TopicSetBy=empty, TopicDeleted=False),
        GroupLocked=N.GroupLocked(isLocked=False), GroupAnnounce=N.GroupAnnounce(IsAnnounce=False, AnnounceVersionID=""),
        GroupEphemeral=N.GroupEphemeral(IsEphemeral=False, DisappearingTimer=0),
        GroupIncognito=N.GroupIncognito(IsIncognito=False),
        GroupParent=N.GroupParent(IsParent=False, DefaultMembershipApprovalMode=""),
        GroupLinkedParent=N.GroupLinkedParent(LinkedParentJID=empty),
        GroupIsDefaultSub=N.GroupIsDefaultSub(IsDefaultSubGroup=False),
        GroupCreated=created_s, ParticipantVersionID="", Participants=list(participants),
    )


def joined_group_ev(group, name: str, participants: Iterable[N.GroupParticipant] = (), owner=None) -> N.JoinedGroup:
    return N.JoinedGroup(Reason="", Type="", CreateKey="", GroupInfo=group_info(group, name, participants, owner))


def group_info_ev(group, *, name: str | None = None, join: Iterable = (), leave: Iterable = (), promote: Iterable = (),
                  demote: Iterable = (), sender=None, timestamp_s=1_760_000_000) -> N.GroupInfoEvent:
    ev = N.GroupInfoEvent(JID=jid(group), Notify="", Sender=jid(sender), Timestamp=timestamp_s,
                          PrevParticipantsVersionID="", ParticipantVersionID="", JoinReason="",
                          Join=[jid(j) for j in join], Leave=[jid(j) for j in leave],
                          Promote=[jid(j) for j in promote], Demote=[jid(j) for j in demote])
    if name is not None:
        ev.Name.CopyFrom(N.GroupName(Name=name, NameSetAt=timestamp_s, NameSetBy=jid(sender)))
    return ev


def connected_ev() -> N.Connected:
    return N.Connected(status=True)


def offline_sync_preview_ev(total=0, messages=0, receipts=0) -> N.OfflineSyncPreview:
    return N.OfflineSyncPreview(Total=total, AppDataChanges=0, Message=messages, Notifications=0, Receipts=receipts)


def offline_sync_completed_ev(count=0) -> N.OfflineSyncCompleted:
    return N.OfflineSyncCompleted(Count=count)


def undecryptable_message_ev(chat, sender, id: str, timestamp_ms: int = 1_760_000_000_000) -> N.UndecryptableMessage:
    info = N.MessageInfo(MessageSource=message_source(chat, sender), ID=id, ServerID=0, Type="text", Pushname="",
                         Timestamp=timestamp_ms, Category="", Multicast=False, MediaType="", Edit="")
    return N.UndecryptableMessage(Info=info, IsUnavailable=False,
                                  DecryptFailMode=N.UndecryptableMessage.DECRYPT_FAIL_SHOW)


def bulk_history(n_messages: int, n_conversations: int, chunk_size: int, *, id_prefix: str = "3EB0",
                 t0: int = 1_700_000_000) -> list[N.HistorySync]:
    """A large history sync as HistorySyncEv chunks: 1:1 chats (a third with a LID mapping), 10% groups,
    a quarter of messages sent from the phone, some media and replies (benchmarks, the simulator)."""
    per_conv = n_messages // n_conversations
    convs_per_chunk = max(1, chunk_size // per_conv)
    chunks = []
    n_chunks = (n_conversations + convs_per_chunk - 1) // convs_per_chunk
    for c in range(n_chunks):
        convs, mappings, pushnames = [], [], []
        for i in range(c * convs_per_chunk, min(n_conversations, (c + 1) * convs_per_chunk)):
            group = i % 10 == 9
            if group:
                chat = f"1203630{i:011d}@g.us"
            else:
                chat = f"55119{i:08d}@s.whatsapp.net"
                if i % 3 == 0:
                    mappings.append((chat, f"2{i:014d}@lid"))
                pushnames.append((chat, f"Cliente {i}"))
            msgs = []
            for k in range(per_conv):
                mid = f"{id_prefix}{i:06d}{k:06d}"
                ts = t0 + i * 1000 + k * 7
                from_me = k % 4 == 3
                if k % 17 == 5:
                    body = image(caption=f"foto {k}", size=1000 + k)
                elif k % 11 == 4:
                    body = extended_text(f"resposta {k}", quoted_id=f"{id_prefix}{i:06d}{k - 1:06d}", quoted_text="anterior")
                else:
                    body = f"mensagem {k} da conversa {i}: " + "texto " * (k % 9)
                participant = f"55219{(i * 7 + k % 5):08d}@s.whatsapp.net" if group and not from_me else ""
                msgs.append(web_message(chat, mid, body, ts, from_me=from_me, participant=participant,
                                          push_name="" if from_me else f"Pessoa {i}",
                                          status="read" if from_me else None))
            convs.append(history_conversation(chat, msgs, name=f"Grupo {i}" if group else f"Contato {i}",
                                                unread_count=i % 3))
        progress = min(100, round((c + 1) * 100 / n_chunks))
        ev = history_sync_ev(convs, "INITIAL_BOOTSTRAP", chunk_order=c + 1, progress=progress, pushnames=pushnames,
                               mappings=mappings)
        chunks.append(ev)
    return chunks
