/*  jsontext.h — JSON text the broker prints for peers is valid UTF-8.

    cJSON copies the bytes of strings as they came, so a client name, group
    name or reason holding invalid UTF-8 would come back out in CTL replies,
    SUBOK info and dead-letter headers.  wire_send_json passes every tree
    through here first.  (The PUB headers frame is checked on the way in by
    src/common/headers.c.)                                                    */
#ifndef BUSD_JSONTEXT_H_INCLUDED
#define BUSD_JSONTEXT_H_INCLUDED

struct cJSON;

/*  Make every key and string value in a JSON tree valid UTF-8 (invalid
    bytes become U+FFFD).                                                    */
void json_utf8_sanitize (struct cJSON *json);

#endif
