// Drives the gateway with the official OpenAI Node SDK (npm "openai",
// installed by scripts/fetch-testdata.sh into .cache/npm).
//   node t/js/openai-sdk.cjs BASE_URL MODEL
// Prints one JSON line per call: streamed chat completion, streamed
// completion, non-streamed chat completion (text, finish_reason, chunks,
// usage); exits 1 with the SDK's error on failure.
'use strict';

const path = require('path');
const OpenAI = require(path.resolve(__dirname,
                                    '../../.cache/npm/node_modules/openai'));

async function main() {
    const [baseURL, model] = process.argv.slice(2);
    const client = new OpenAI({ baseURL, apiKey: 'none', maxRetries: 0,
                                timeout: 60000 });

    const chat = await client.chat.completions.create({
        model, stream: true, temperature: 0, max_tokens: 25,
        stream_options: { include_usage: true },
        messages: [{ role: 'user', content: 'Once upon a time' }],
    });
    let text = '', finish = null, chunks = 0, usage = null, role = null;
    for await (const c of chat) {
        chunks++;
        if (c.usage) usage = c.usage;
        if (!c.choices.length) continue;
        const ch = c.choices[0];
        if (ch.delta.role) role = ch.delta.role;
        text += ch.delta.content || '';
        if (ch.finish_reason) finish = ch.finish_reason;
    }
    console.log(JSON.stringify({ call: 'chat_stream', text, finish, chunks,
                                 role, usage }));

    const comp = await client.completions.create({
        model, stream: true, temperature: 0, max_tokens: 25,
        prompt: 'Once upon a time',
    });
    text = ''; finish = null; chunks = 0;
    for await (const c of comp) {
        chunks++;
        text += c.choices[0].text || '';
        if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
    }
    console.log(JSON.stringify({ call: 'completion_stream', text, finish,
                                 chunks }));

    const one = await client.chat.completions.create({
        model, temperature: 0, max_tokens: 25,
        messages: [{ role: 'user', content: 'Once upon a time' }],
    });
    console.log(JSON.stringify({ call: 'chat', id: one.id,
                                 object: one.object,
                                 text: one.choices[0].message.content,
                                 finish: one.choices[0].finish_reason,
                                 usage: one.usage }));

    try {
        await client.chat.completions.create({
            model: 'no-such-model',
            messages: [{ role: 'user', content: 'hi' }],
        });
        console.log(JSON.stringify({ call: 'unknown_model', status: 200 }));
    } catch (e) {
        console.log(JSON.stringify({ call: 'unknown_model',
                                     status: e.status, code: e.code,
                                     param: e.param, type: e.type }));
    }
}

main().catch((e) => {
    console.error('openai-sdk: ' + (e && e.stack || e));
    process.exit(1);
});
