-- The sample campaign data of the original design (seed/000_caab0d8d36ab637f.txt,
-- "Sample Data"): 4 templates, 5 email steps, 6 LinkedIn steps, 3 instances,
-- 3 enrollments, 16 events. Loaded by `gateway seed` (gateway/db/seed.py), which
-- runs this file once, in one transaction, only when the first template is absent.
--
-- Every row has a fixed UUID (5eed000T-..., T = table) and every insert is
-- ON CONFLICT DO NOTHING. The instances' provider keys (lemlist campaign, Postmark
-- tag, PhantomBuster agents) are the seed's own, different from the example
-- payloads, so posting those examples never moves the seeded counters.
--
-- The seeded enrollments' state is then derived from their events
-- (refresh_enrollments(), so a later webhook for a seeded enrollment does not
-- count twice), and the last statement sets the seed's baseline counters.

INSERT INTO campaign_templates
    (id, name, description, type, path_type, settings, is_active, created_by, created_at, updated_at)
VALUES
    ('5eed0001-0000-4000-8000-000000000001', 'Tech Company Outreach',
     'Three-step email sequence for CTOs and VPs of Engineering at growth-stage tech companies.',
     'email', 'structured',
     '{"timezone": "America/New_York", "send_window": {"days": ["mon", "tue", "wed", "thu"], "start": "09:00", "end": "17:00"}, "daily_send_limit": 50, "stop_on_reply": true, "track_opens": true, "track_clicks": true}',
     true, 'alex.rivera@rtgs-example.com', '2024-12-16 10:04:00+00', '2024-12-16 10:04:00+00'),
    ('5eed0001-0000-4000-8000-000000000002', 'SaaS Decision Makers',
     'Email and LinkedIn together for finance and operations leaders at SaaS companies; LinkedIn messages fall back to email when the connection is not accepted.',
     'multi_channel', 'structured',
     '{"timezone": "Europe/Madrid", "send_window": {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:30", "end": "18:00"}, "daily_send_limit": 40, "daily_linkedin_limit": 25, "stop_on_reply": true, "channel_priority": ["linkedin", "email"]}',
     true, 'alex.rivera@rtgs-example.com', '2024-12-18 14:31:00+00', '2024-12-18 14:31:00+00'),
    ('5eed0001-0000-4000-8000-000000000003', 'LinkedIn Connection Campaign',
     'Warm up, connect and follow up with product leaders on LinkedIn only.',
     'linkedin', 'structured',
     '{"timezone": "America/Chicago", "daily_linkedin_limit": 20, "withdraw_pending_after_days": 21, "stop_on_reply": true}',
     true, 'jordan.lee@rtgs-example.com', '2025-01-08 09:12:00+00', '2025-01-08 09:12:00+00'),
    ('5eed0001-0000-4000-8000-000000000004', 'AI-Personalized Enterprise',
     'Experimental: the next step, channel and copy are chosen per contact by a model from enterprise account research. Inactive until reviewed.',
     'multi_channel', 'dynamic_ai',
     '{"channels": ["email", "linkedin"], "max_steps": 6, "min_delay_hours": 48, "research_sources": ["company_site", "linkedin_profile", "news"], "approval_required": true, "tone": "consultative"}',
     false, 'jordan.lee@rtgs-example.com', '2025-01-20 16:45:00+00', '2025-01-20 16:45:00+00')
ON CONFLICT DO NOTHING;

INSERT INTO email_sequences
    (id, template_id, step_number, subject, body_template, delay_hours, a_b_variant, is_active, created_at, updated_at)
VALUES
    ('5eed0002-0000-4000-8000-000000000001', '5eed0001-0000-4000-8000-000000000001', 1,
     '{{first_name}}, a question about {{company}}''s release pipeline',
     '<p>Hi {{first_name}},</p>
<p>Teams like {{company}} usually hit the same wall after a Series B: releases slow down just as the engineering team doubles.</p>
<p>We helped similar {{industry}} companies cut their lead time for changes by 40% without adding headcount. Would a 20-minute call next week be useful?</p>
<p>Best,<br>{{sender_name}}</p>',
     0, NULL, true, '2024-12-16 10:04:00+00', '2024-12-16 10:04:00+00'),
    ('5eed0002-0000-4000-8000-000000000002', '5eed0001-0000-4000-8000-000000000001', 2,
     'Re: {{company}}''s release pipeline',
     '<p>Hi {{first_name}},</p>
<p>Following up with the case study I mentioned: <a href="https://rtgs-example.com/case-studies/release-velocity">how a 120-person engineering team ships daily</a>.</p>
<p>Happy to walk you through how it would look at {{company}}.</p>
<p>{{sender_name}}</p>',
     72, NULL, true, '2024-12-16 10:04:00+00', '2024-12-16 10:04:00+00'),
    ('5eed0002-0000-4000-8000-000000000003', '5eed0001-0000-4000-8000-000000000001', 3,
     'Closing the loop, {{first_name}}',
     '<p>Hi {{first_name}},</p>
<p>I will not keep filling your inbox. If release speed becomes a priority for {{company}} this quarter, just reply to this email and I will send over a few times.</p>
<p>All the best,<br>{{sender_name}}</p>',
     96, NULL, true, '2024-12-16 10:04:00+00', '2024-12-16 10:04:00+00'),
    ('5eed0002-0000-4000-8000-000000000004', '5eed0001-0000-4000-8000-000000000002', 1,
     '{{first_name}}, trimming {{company}}''s SaaS spend',
     '<p>Hi {{first_name}},</p>
<p>Finance leaders at {{company_size}}-person SaaS companies typically find 15-20% of their software spend in unused seats and overlapping tools.</p>
<p>Could I show you what that audit looks like for {{company}}? It takes 15 minutes.</p>
<p>Best regards,<br>{{sender_name}}</p>',
     0, NULL, true, '2024-12-18 14:31:00+00', '2024-12-18 14:31:00+00'),
    ('5eed0002-0000-4000-8000-000000000005', '5eed0001-0000-4000-8000-000000000002', 2,
     'A quick case study for {{company}}',
     '<p>Hi {{first_name}},</p>
<p>Since we could not connect on LinkedIn, here is the short version: <a href="https://rtgs-example.com/case-studies/saas-spend">a 300-person SaaS company saved EUR 410k in one renewal cycle</a>.</p>
<p>Worth a conversation for {{company}}?</p>
<p>{{sender_name}}</p>',
     120, NULL, true, '2024-12-18 14:31:00+00', '2024-12-18 14:31:00+00')
ON CONFLICT DO NOTHING;

INSERT INTO linkedin_sequences
    (id, template_id, step_number, action_type, message_template, delay_hours, fallback_channel, created_at, updated_at)
VALUES
    ('5eed0003-0000-4000-8000-000000000001', '5eed0001-0000-4000-8000-000000000002', 1,
     'profile_visit', NULL, 0, NULL, '2024-12-18 14:31:00+00', '2024-12-18 14:31:00+00'),
    ('5eed0003-0000-4000-8000-000000000002', '5eed0001-0000-4000-8000-000000000002', 2,
     'connection_request',
     'Hi {{first_name}}, I work with finance leaders at SaaS companies like {{company}} on software spend. Would be glad to connect.',
     24, NULL, '2024-12-18 14:31:00+00', '2024-12-18 14:31:00+00'),
    ('5eed0003-0000-4000-8000-000000000003', '5eed0001-0000-4000-8000-000000000002', 3,
     'message',
     'Thanks for connecting, {{first_name}}. We recently helped a SaaS company of {{company}}''s size trim 18% of its tool spend. Open to comparing notes?',
     72, 'email', '2024-12-18 14:31:00+00', '2024-12-18 14:31:00+00'),
    ('5eed0003-0000-4000-8000-000000000004', '5eed0001-0000-4000-8000-000000000003', 1,
     'profile_visit', NULL, 0, NULL, '2025-01-08 09:12:00+00', '2025-01-08 09:12:00+00'),
    ('5eed0003-0000-4000-8000-000000000005', '5eed0001-0000-4000-8000-000000000003', 2,
     'connection_request',
     'Hi {{first_name}}, I enjoyed your post on {{recent_topic}}. I talk with product leaders about discovery practices and would like to connect.',
     48, NULL, '2025-01-08 09:12:00+00', '2025-01-08 09:12:00+00'),
    ('5eed0003-0000-4000-8000-000000000006', '5eed0001-0000-4000-8000-000000000003', 3,
     'message',
     'Thanks for connecting, {{first_name}}! Curious how {{company}} decides what makes the roadmap. We put together a short benchmark of 40 product teams; happy to share it.',
     96, NULL, '2025-01-08 09:12:00+00', '2025-01-08 09:12:00+00')
ON CONFLICT DO NOTHING;

-- Counters start at zero here; the last statement sets the baseline.
INSERT INTO campaign_instances
    (id, template_id, name, status, provider_config, settings,
     started_at, paused_at, completed_at, created_at, updated_at)
VALUES
    ('5eed0004-0000-4000-8000-000000000001', '5eed0001-0000-4000-8000-000000000001',
     'Tech Company Outreach - Q1 2025 Series B CTOs', 'active',
     '{"email_provider": "lemlist", "linkedin_provider": "lemlist", "lemlist_campaign_id": "cam_Tq5Nw8Lx2Bv7Rm4Zk"}',
     '{"daily_send_limit": 50, "timezone": "America/New_York", "sender": {"name": "Alex Rivera", "email": "alex.rivera@rtgs-example.com"}}',
     '2025-01-06 14:00:00+00', NULL, NULL, '2025-01-03 16:20:00+00', '2025-01-06 14:00:00+00'),
    ('5eed0004-0000-4000-8000-000000000002', '5eed0001-0000-4000-8000-000000000002',
     'SaaS Decision Makers - EMEA February 2025', 'paused',
     '{"email_provider": "postmark", "linkedin_provider": "phantombuster", "postmark_tag": "saas-dm-emea-2025-02", "phantombuster_agent_id": "4862019375518830", "phantombuster_agent_ids": ["4862019375510284", "4862019375518830", "4862019375523417"]}',
     '{"daily_send_limit": 40, "daily_linkedin_limit": 25, "timezone": "Europe/Madrid", "message_stream": "outbound", "pause_reason": "LinkedIn weekly invitation limit reached"}',
     '2025-02-03 09:00:00+00', '2025-02-14 17:30:00+00', NULL, '2025-01-29 11:05:00+00', '2025-02-14 17:30:00+00'),
    ('5eed0004-0000-4000-8000-000000000003', '5eed0001-0000-4000-8000-000000000003',
     'LinkedIn Connections - Product Leaders Q2 2025', 'draft',
     '{"email_provider": "postmark", "linkedin_provider": "phantombuster", "postmark_tag": "li-product-leaders-2025-q2", "phantombuster_agent_id": "4862019375531952"}',
     '{"daily_linkedin_limit": 20, "timezone": "America/Chicago"}',
     NULL, NULL, NULL, '2025-02-20 15:40:00+00', '2025-02-20 15:40:00+00')
ON CONFLICT DO NOTHING;

-- provider_config: the instance's providers when the contact was enrolled.
INSERT INTO campaign_enrollments
    (id, instance_id, contact_id, contact_email, linkedin_url, status, current_step,
     next_action_at, metadata, provider_config, enrolled_at, completed_at, created_at, updated_at)
VALUES
    -- Completed: replied to the second email.
    ('5eed0005-0000-4000-8000-000000000001', '5eed0004-0000-4000-8000-000000000001',
     'hs_contact_48213', 'sarah.chen@brightwave-example.io', NULL, 'completed', 2, NULL,
     '{"first_name": "Sarah", "last_name": "Chen", "company": "Brightwave", "title": "CTO", "industry": "developer tools", "company_size": "140", "sender_name": "Alex Rivera"}',
     '{"email_provider": "lemlist", "linkedin_provider": "lemlist", "lemlist_campaign_id": "cam_Tq5Nw8Lx2Bv7Rm4Zk"}',
     '2025-01-06 13:55:00+00', '2025-01-10 09:12:44+00', '2025-01-06 13:55:00+00', '2025-01-10 09:12:44+00'),
    -- Active mid-sequence: two emails sent, the third due 96 hours after the second.
    ('5eed0005-0000-4000-8000-000000000002', '5eed0004-0000-4000-8000-000000000001',
     'hs_contact_48377', 'marcus.bell@ironpeak-example.com', NULL, 'active', 2,
     '2025-01-14 14:05:30+00',
     '{"first_name": "Marcus", "last_name": "Bell", "company": "Ironpeak Systems", "title": "VP Engineering", "industry": "cybersecurity", "company_size": "210", "sender_name": "Alex Rivera"}',
     '{"email_provider": "lemlist", "linkedin_provider": "lemlist", "lemlist_campaign_id": "cam_Tq5Nw8Lx2Bv7Rm4Zk"}',
     '2025-01-07 13:58:00+00', NULL, '2025-01-07 13:58:00+00', '2025-01-11 08:40:02+00'),
    -- Multi-channel: email through Postmark, LinkedIn through PhantomBuster; held by the paused instance.
    ('5eed0005-0000-4000-8000-000000000003', '5eed0004-0000-4000-8000-000000000002',
     'hs_contact_51902', 'elena.garcia@lumencloud-example.com',
     'https://www.linkedin.com/in/elena-garcia-example/', 'paused', 3, NULL,
     '{"first_name": "Elena", "last_name": "Garcia", "company": "LumenCloud", "title": "VP Finance", "country": "ES", "company_size": "320", "sender_name": "Alex Rivera"}',
     '{"email_provider": "postmark", "linkedin_provider": "phantombuster", "postmark_tag": "saas-dm-emea-2025-02", "phantombuster_agent_id": "4862019375518830", "phantombuster_agent_ids": ["4862019375510284", "4862019375518830", "4862019375523417"]}',
     '2025-02-03 08:45:00+00', NULL, '2025-02-03 08:45:00+00', '2025-02-14 17:30:00+00')
ON CONFLICT DO NOTHING;

-- Keys follow each provider's dedup key (README): lemlist activity `_id`; Postmark
-- MessageID for our own send, `Delivery:`/`Open:` body keys for webhooks;
-- PhantomBuster `{agentId}:{action}:{profile}:{timestamp}`.
INSERT INTO campaign_events
    (id, enrollment_id, instance_id, event_type, channel, provider, provider_event_id,
     step_number, timestamp, metadata)
VALUES
    -- Sarah Chen (completed), lemlist.
    ('5eed0006-0000-4000-8000-000000000001', '5eed0005-0000-4000-8000-000000000001',
     '5eed0004-0000-4000-8000-000000000001', 'sent', 'email', 'lemlist', 'act_Wd3Kx8Nq2Lm6Tz9Rb',
     1, '2025-01-06 14:02:11.204+00',
     '{"lemlist_type": "emailsSent", "lead_id": "lea_Bw4Tz9Kq2Xn6Lm8Rd", "campaign_id": "cam_Tq5Nw8Lx2Bv7Rm4Zk", "campaign_name": "Tech Company Outreach - Q1 2025 Series B CTOs", "step": 1, "email_id": "eml_Gk7Wq2Lz9Nx4Tm6Rb", "subject": "Sarah, a question about Brightwave''s release pipeline"}'),
    ('5eed0006-0000-4000-8000-000000000002', '5eed0005-0000-4000-8000-000000000001',
     '5eed0004-0000-4000-8000-000000000001', 'opened', 'email', 'lemlist', 'act_Hq7Ln2Xw5Tk9Md3Zs',
     1, '2025-01-06 15:17:42.880+00',
     '{"lemlist_type": "emailsOpened", "is_first": true, "lead_id": "lea_Bw4Tz9Kq2Xn6Lm8Rd", "campaign_id": "cam_Tq5Nw8Lx2Bv7Rm4Zk", "step": 1, "email_id": "eml_Gk7Wq2Lz9Nx4Tm6Rb"}'),
    ('5eed0006-0000-4000-8000-000000000003', '5eed0005-0000-4000-8000-000000000001',
     '5eed0004-0000-4000-8000-000000000001', 'clicked', 'email', 'lemlist', 'act_Pz4Rm8Kc1Wx6Nq3Lt',
     1, '2025-01-06 15:19:05.311+00',
     '{"lemlist_type": "emailsClicked", "is_first": true, "lead_id": "lea_Bw4Tz9Kq2Xn6Lm8Rd", "campaign_id": "cam_Tq5Nw8Lx2Bv7Rm4Zk", "step": 1, "email_id": "eml_Gk7Wq2Lz9Nx4Tm6Rb", "url": "https://rtgs-example.com/case-studies/release-velocity"}'),
    ('5eed0006-0000-4000-8000-000000000004', '5eed0005-0000-4000-8000-000000000001',
     '5eed0004-0000-4000-8000-000000000001', 'sent', 'email', 'lemlist', 'act_Nv6Tq1Zk8Lw3Rx5Md',
     2, '2025-01-09 14:02:09.517+00',
     '{"lemlist_type": "emailsSent", "lead_id": "lea_Bw4Tz9Kq2Xn6Lm8Rd", "campaign_id": "cam_Tq5Nw8Lx2Bv7Rm4Zk", "step": 2, "email_id": "eml_Xr3Nd8Kq1Wz6Lm4Tc", "subject": "Re: Brightwave''s release pipeline"}'),
    ('5eed0006-0000-4000-8000-000000000005', '5eed0005-0000-4000-8000-000000000001',
     '5eed0004-0000-4000-8000-000000000001', 'opened', 'email', 'lemlist', 'act_Kx2Wm7Rd4Qz9Ln6Tb',
     2, '2025-01-09 18:44:27.093+00',
     '{"lemlist_type": "emailsOpened", "is_first": true, "lead_id": "lea_Bw4Tz9Kq2Xn6Lm8Rd", "campaign_id": "cam_Tq5Nw8Lx2Bv7Rm4Zk", "step": 2, "email_id": "eml_Xr3Nd8Kq1Wz6Lm4Tc"}'),
    ('5eed0006-0000-4000-8000-000000000006', '5eed0005-0000-4000-8000-000000000001',
     '5eed0004-0000-4000-8000-000000000001', 'replied', 'email', 'lemlist', 'act_Tr8Lz3Nw6Kq1Xm5Vc',
     2, '2025-01-10 09:12:44.000+00',
     '{"lemlist_type": "emailsReplied", "is_first": true, "lead_id": "lea_Bw4Tz9Kq2Xn6Lm8Rd", "campaign_id": "cam_Tq5Nw8Lx2Bv7Rm4Zk", "step": 2, "email_id": "eml_Xr3Nd8Kq1Wz6Lm4Tc"}'),
    -- Marcus Bell (active, mid-sequence), lemlist.
    ('5eed0006-0000-4000-8000-000000000007', '5eed0005-0000-4000-8000-000000000002',
     '5eed0004-0000-4000-8000-000000000001', 'sent', 'email', 'lemlist', 'act_Zm5Kq9Wx2Rn7Lt4Dh',
     1, '2025-01-07 14:05:33.421+00',
     '{"lemlist_type": "emailsSent", "lead_id": "lea_Md8Rq3Wx6Tk1Zn9Lf", "campaign_id": "cam_Tq5Nw8Lx2Bv7Rm4Zk", "campaign_name": "Tech Company Outreach - Q1 2025 Series B CTOs", "step": 1, "email_id": "eml_Jn5Tw9Lx2Qk7Rd3Mz", "subject": "Marcus, a question about Ironpeak Systems''s release pipeline"}'),
    ('5eed0006-0000-4000-8000-000000000008', '5eed0005-0000-4000-8000-000000000002',
     '5eed0004-0000-4000-8000-000000000001', 'opened', 'email', 'lemlist', 'act_Lc3Tx8Nz5Wq1Km7Rf',
     1, '2025-01-07 20:31:18.662+00',
     '{"lemlist_type": "emailsOpened", "is_first": true, "lead_id": "lea_Md8Rq3Wx6Tk1Zn9Lf", "campaign_id": "cam_Tq5Nw8Lx2Bv7Rm4Zk", "step": 1, "email_id": "eml_Jn5Tw9Lx2Qk7Rd3Mz"}'),
    ('5eed0006-0000-4000-8000-000000000009', '5eed0005-0000-4000-8000-000000000002',
     '5eed0004-0000-4000-8000-000000000001', 'sent', 'email', 'lemlist', 'act_Rb9Wn4Lk7Tz2Qx6Mp',
     2, '2025-01-10 14:05:30.158+00',
     '{"lemlist_type": "emailsSent", "lead_id": "lea_Md8Rq3Wx6Tk1Zn9Lf", "campaign_id": "cam_Tq5Nw8Lx2Bv7Rm4Zk", "step": 2, "email_id": "eml_Vk2Rz7Nq4Lw9Tx5Hd", "subject": "Re: Ironpeak Systems''s release pipeline"}'),
    ('5eed0006-0000-4000-8000-000000000010', '5eed0005-0000-4000-8000-000000000002',
     '5eed0004-0000-4000-8000-000000000001', 'opened', 'email', 'lemlist', 'act_Qx1Mz6Rt3Wk8Ln5Hc',
     2, '2025-01-11 08:40:02.947+00',
     '{"lemlist_type": "emailsOpened", "is_first": true, "lead_id": "lea_Md8Rq3Wx6Tk1Zn9Lf", "campaign_id": "cam_Tq5Nw8Lx2Bv7Rm4Zk", "step": 2, "email_id": "eml_Vk2Rz7Nq4Lw9Tx5Hd"}'),
    -- Elena Garcia (multi-channel): LinkedIn through PhantomBuster, email through Postmark.
    ('5eed0006-0000-4000-8000-000000000011', '5eed0005-0000-4000-8000-000000000003',
     '5eed0004-0000-4000-8000-000000000002', 'profile_visited', 'linkedin', 'phantombuster',
     '4862019375510284:visit:linkedin.com/in/elena-garcia-example:2025-02-03T09:30:41.512Z',
     1, '2025-02-03 09:30:41.512+00',
     '{"container_id": "8813402957716625", "agent_name": "SaaS DM EMEA - Profile Visitor", "script": "LinkedIn Profile Visitor.js", "profile_url": "https://www.linkedin.com/in/elena-garcia-example/"}'),
    ('5eed0006-0000-4000-8000-000000000012', '5eed0005-0000-4000-8000-000000000003',
     '5eed0004-0000-4000-8000-000000000002', 'sent', 'email', 'postmark',
     'b7e4d2a9-3c18-4f6e-9a05-6d2c8e1f4b73',
     1, '2025-02-03 15:00:00.000+00',
     '{"source": "send_api", "message_id": "b7e4d2a9-3c18-4f6e-9a05-6d2c8e1f4b73", "message_stream": "outbound", "tag": "saas-dm-emea-2025-02", "subject": "Elena, trimming LumenCloud''s SaaS spend"}'),
    ('5eed0006-0000-4000-8000-000000000013', '5eed0005-0000-4000-8000-000000000003',
     '5eed0004-0000-4000-8000-000000000002', 'delivered', 'email', 'postmark',
     'Delivery:b7e4d2a9-3c18-4f6e-9a05-6d2c8e1f4b73:elena.garcia@lumencloud-example.com',
     1, '2025-02-03 15:00:03.000+00',
     '{"record_type": "Delivery", "message_id": "b7e4d2a9-3c18-4f6e-9a05-6d2c8e1f4b73", "message_stream": "outbound", "tag": "saas-dm-emea-2025-02", "server_id": 23451, "details": "smtp;250 2.0.0 OK 1738594803 q12si4417720wrx.311 - gsmtp"}'),
    ('5eed0006-0000-4000-8000-000000000014', '5eed0005-0000-4000-8000-000000000003',
     '5eed0004-0000-4000-8000-000000000002', 'opened', 'email', 'postmark',
     'Open:b7e4d2a9-3c18-4f6e-9a05-6d2c8e1f4b73:elena.garcia@lumencloud-example.com:2025-02-03T17:22:10Z',
     1, '2025-02-03 17:22:10.000+00',
     '{"record_type": "Open", "message_id": "b7e4d2a9-3c18-4f6e-9a05-6d2c8e1f4b73", "message_stream": "outbound", "tag": "saas-dm-emea-2025-02", "server_id": 23451, "first_open": true, "platform": "Desktop", "client": "Outlook 2019", "os": "Windows 11"}'),
    ('5eed0006-0000-4000-8000-000000000015', '5eed0005-0000-4000-8000-000000000003',
     '5eed0004-0000-4000-8000-000000000002', 'connection_requested', 'linkedin', 'phantombuster',
     '4862019375518830:connect:linkedin.com/in/elena-garcia-example:2025-02-04T10:15:32.118Z',
     2, '2025-02-04 10:15:32.118+00',
     '{"container_id": "8813402957724410", "agent_name": "SaaS DM EMEA - Auto Connect", "script": "LinkedIn Auto Connect.js", "profile_url": "https://www.linkedin.com/in/elena-garcia-example/", "message": "Hi Elena, I work with finance leaders at SaaS companies like LumenCloud on software spend. Would be glad to connect."}'),
    ('5eed0006-0000-4000-8000-000000000016', '5eed0005-0000-4000-8000-000000000003',
     '5eed0004-0000-4000-8000-000000000002', 'message_sent', 'linkedin', 'phantombuster',
     '4862019375523417:message:linkedin.com/in/elena-garcia-example:2025-02-07T11:05:47.730Z',
     3, '2025-02-07 11:05:47.730+00',
     '{"container_id": "8813402957738902", "agent_name": "SaaS DM EMEA - Message Sender", "script": "LinkedIn Message Sender.js", "profile_url": "https://www.linkedin.com/in/elena-garcia-example/", "message": "Thanks for connecting, Elena. We recently helped a SaaS company of LumenCloud''s size trim 18% of its tool spend. Open to comparing notes?"}')
ON CONFLICT DO NOTHING;

SELECT refresh_enrollments(ARRAY[
    '5eed0005-0000-4000-8000-000000000001', '5eed0005-0000-4000-8000-000000000002',
    '5eed0005-0000-4000-8000-000000000003']::uuid[]);

-- The seed's baseline counters (the design's "metrics populated"). Later
-- ingestion adds to these.
UPDATE campaign_instances AS i
SET total_enrolled = b.enrolled,
    total_sent = b.sent,
    total_opened = b.opened,
    total_clicked = b.clicked,
    total_replied = b.replied
FROM (VALUES
    ('5eed0004-0000-4000-8000-000000000001'::uuid, 150, 145, 87, 34, 12),
    ('5eed0004-0000-4000-8000-000000000002'::uuid, 75, 72, 41, 15, 6),
    ('5eed0004-0000-4000-8000-000000000003'::uuid, 0, 0, 0, 0, 0)
) AS b (id, enrolled, sent, opened, clicked, replied)
WHERE i.id = b.id;
