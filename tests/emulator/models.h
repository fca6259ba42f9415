/*
 * models: the models the emulator serves, read at startup from the
 * gateway's catalogue (data/models.json, through src/catalogue.c).  Owns the
 * catalogue, the emulator-only retirements (--retire), which model a request
 * names (unknown and retired ones are a 404, as on the API), and the JSON of
 * GET /v1/models.  Depends on util only (and src/catalogue.c).
 */
#ifndef EMU_MODELS_H
#define EMU_MODELS_H

#include "catalogue.h"
#include "util.h"

/* Loads the catalogue at path (and the override, NULL for none); stops the process with the
 * loader's message when it is wrong. */
void models_load(const char *path, const char *override);
/* Retires a model on the emulator's side only (an id or alias the catalogue knows), so a
 * gateway that still thinks it current meets the API's 404. */
void models_retire(const char *name);
void models_free(void);

/* The model a request names (n bytes), or NULL when the API would answer 404: unknown, or
 * retired (today, or by --retire). */
const struct catalogue_model *models_find(const char *name, size_t n);

/* GET /v1/models: the models the API serves, in the catalogue's order (newest first). */
json_object *models_list_json(void);
/* GET /v1/models/{id}: one model, or NULL for a 404. */
json_object *models_get_json(const char *id);

#endif
